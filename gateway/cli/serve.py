"""`nimbus serve`: its flags and NIMBUS_* variables become the platform's `Config`, checked
before anything starts; then the gateway and invoker run in this process.

A flag wins over its variable, which wins over the default. A wrong price book, driver,
engine list or retention fails here on one line, with nothing started or written.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.errors import CliError, UsageError

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.pricebook import PriceBook

DRIVERS = ["auto", "docker", "process", "kubernetes"]
VM_PROVIDERS = ["local", "docker-hosts", "kubernetes", "none"]


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`nimbus serve` and its flags."""
    serve = sub.add_parser("serve", help="run the gateway and invoker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", default=".nimbus/data")
    serve.add_argument(
        "--driver", choices=DRIVERS, help="container driver (default: $NIMBUS_DRIVER or auto)"
    )
    serve.add_argument(
        "--vm-provider",
        choices=VM_PROVIDERS,
        help="node pool (default: $NIMBUS_VM_PROVIDER, else local; kubernetes with the "
        "kubernetes driver; docker-hosts when a hosts file is given)",
    )
    serve.add_argument(
        "--docker-hosts",
        metavar="FILE|URLS",
        help="Docker engines, one per VM: a TOML/JSON hosts file, or comma-separated "
        "DOCKER_HOST URLs with TLS from $DOCKER_CERT_PATH (docs/docker-hosts.md); "
        "default $NIMBUS_DOCKER_HOSTS",
    )
    serve.add_argument(
        "--placement",
        default="auto",
        help="placement policy: auto (best-fit, or worst-fit with memory overcommit on), "
        "first-fit, next-fit, random-fit, worst-fit, best-fit, dot-product, l2-norm "
        "(docs/performance.md)",
    )
    serve.add_argument(
        "--memory-overcommit",
        type=float,
        default=None,
        metavar="RATIO",
        help="how far a node's full container limits may exceed its memory: above 1.0, idle "
        "containers are admitted at their deflated size (ballooning); default "
        "$NIMBUS_MEMORY_OVERCOMMIT, else 1.0 (off); docs/performance.md",
    )
    serve.add_argument(
        "--stem-cells",
        action="append",
        default=[],
        metavar="[RUNTIME=]N",
        help="prewarmed 128 MB containers of a runtime: N alone is python:3.11's (default "
        "2), RUNTIME=N another's (nodejs:18 default 1); repeatable",
    )
    serve.add_argument(
        "--keep-alive-policy",
        default="budget",
        choices=["budget", "hybrid", "fixed"],
        help="how long idle containers stay warm (default: budget, see docs/performance.md)",
    )
    serve.add_argument(
        "--keep-alive", type=float, help="a fixed keep-alive in seconds (implies fixed policy)"
    )
    serve.add_argument("--price-book", help="TOML or JSON price book (default: AWS list prices)")
    serve.add_argument(
        "--public-metrics", action="store_true", help="serve /metrics without the admin key"
    )
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.add_argument(
        "--workers",
        type=int,
        help="gateway processes sharing the port, each with 1/N of the machine "
        "(default: $NIMBUS_WORKERS, else half the CPUs this process may use, at least 1; "
        "0 = one per CPU; at most 8; one only with the docker-hosts and kubernetes "
        "providers; docs/performance.md)",
    )
    serve.add_argument(
        "--allow-root-images",
        action="store_true",
        help="let functions' own images run as root (still with no capabilities, read-only)",
    )
    serve.add_argument(
        "--activation-retention-days",
        type=float,
        help="delete activations (results, logs) older than this; 0 keeps them "
        "(default: $NIMBUS_ACTIVATION_RETENTION_DAYS, else 7); usage records are kept",
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run gateway and invoker in this process until interrupted."""
    # The server's dependencies load only for `serve`: the other commands start quickly.
    from gateway import server
    from gateway.app import create_app
    from invoker.share import refusal

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = serve_config(args, os.environ)
    count = _workers(args.workers, os.environ, config.vm_provider)
    refused = refusal(config.vm_provider, count)
    if refused is not None:  # before anything starts
        raise UsageError(refused)
    if config.driver == "process":
        print("warning: the process driver runs functions with no isolation", file=sys.stderr)
    raise_open_files_limit()
    processes = f", {count} workers" if count > 1 else ""
    print(
        f"nimbus: serving on http://{args.host}:{args.port} (data: {config.data_dir}{processes})",
        flush=True,
    )
    if count > 1:
        from gateway import workers

        workers.run(config, args.host, args.port, workers=count, access_log=args.access_log)
        return 0
    server.run(create_app(config), args.host, args.port, access_log=args.access_log)
    return 0


def _workers(flag: int | None, env: Mapping[str, str], vm_provider: str) -> int:
    """How many gateway processes: the flag, else $NIMBUS_WORKERS (0: one per CPU), else
    half the CPUs this process may use (`gateway/worker_count.py`)."""
    from gateway.worker_count import MAX_WORKERS, by_default, per_cpu, usable_cpus

    raw = flag if flag is not None else env.get("NIMBUS_WORKERS")
    if raw is None or raw == "":
        return by_default(usable_cpus(), vm_provider)
    try:
        count = int(raw)
    except ValueError:
        raise CliError(f"--workers takes a number, got {raw!r}") from None
    if count == 0:
        return per_cpu(usable_cpus())
    if not 1 <= count <= MAX_WORKERS:
        raise CliError(f"--workers must be between 1 and {MAX_WORKERS}, got {count}")
    return count


def serve_config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    """The platform's `Config` from `serve`'s flags and the environment.

    Raises CliError for a wrong setting. Only once all are right does it touch the data
    dir, to read (or make) the admin key.
    """
    from gateway.config import Config

    data_dir = Path(args.data_dir)
    prices = _price_book(args.price_book or env.get("NIMBUS_PRICE_BOOK"))
    driver = args.driver or env.get("NIMBUS_DRIVER") or "auto"
    if driver not in DRIVERS:
        raise CliError(f"unknown driver {driver!r}; choose {', '.join(DRIVERS)}")
    engines = _engines(args.docker_hosts or env.get("NIMBUS_DOCKER_HOSTS") or "", env)
    retention = _retention_days(args.activation_retention_days, env)
    overcommit = _memory_overcommit(args.memory_overcommit, env)
    return Config(
        data_dir=data_dir,
        host=args.host,
        port=args.port,
        admin_key=admin_key_for(data_dir, env),
        driver=driver,
        vm_provider=args.vm_provider
        or env.get("NIMBUS_VM_PROVIDER")
        or _default_vm_provider(driver, engines),
        docker_hosts_file=engines.hosts_file,
        docker_hosts_urls=engines.urls,
        docker_cert_path=engines.cert_path,
        placement_policy=args.placement,
        memory_overcommit=overcommit,
        k8s_namespace=env.get("NIMBUS_K8S_NAMESPACE") or "nimbus-functions",
        k8s_runtime_class=env.get("NIMBUS_K8S_RUNTIME_CLASS", ""),
        k8s_image_prefix=env.get("NIMBUS_K8S_IMAGE_PREFIX") or "nimbus/",
        store_url=env.get("NIMBUS_STORE_URL", ""),
        price_book=prices,
        public_metrics=args.public_metrics,
        allow_root_images=args.allow_root_images,
        stem_cells=stem_cells_value(args.stem_cells),
        keep_alive_s=args.keep_alive or 600.0,
        keep_alive_policy="fixed" if args.keep_alive else args.keep_alive_policy,
        activation_retention_days=retention,
    )


def _memory_overcommit(flag: float | None, env: Mapping[str, str]) -> float:
    """The overcommit cap: the flag, else $NIMBUS_MEMORY_OVERCOMMIT, else 1.0 (off)."""
    raw: object = flag if flag is not None else env.get("NIMBUS_MEMORY_OVERCOMMIT", "1.0")
    try:
        ratio = float(str(raw))
    except ValueError:
        raise CliError(f"--memory-overcommit takes a number, got {raw!r}") from None
    if not 1.0 <= ratio <= 8.0:
        raise CliError(f"--memory-overcommit must be between 1.0 and 8.0, got {ratio:g}")
    return ratio


def _price_book(path: str | None) -> PriceBook:
    from gateway.pricebook import PriceBook, PriceBookError, load_price_book

    try:
        return load_price_book(path) if path else PriceBook()
    except (PriceBookError, OSError) as exc:
        raise CliError(f"price book: {exc}") from exc


@dataclass(frozen=True)
class Engines:
    """`--docker-hosts` as the settings take it: a hosts file or a list of URLs."""

    hosts_file: Path | None
    urls: str
    cert_path: Path | None  # $DOCKER_CERT_PATH: TLS material for tcp:// URLs

    @property
    def listed(self) -> bool:
        """Whether any engines were given."""
        return self.hosts_file is not None or bool(self.urls)


def docker_hosts_value(value: str, cert_path: Path | None) -> Engines:
    """Pure: a hosts file, unless the value holds `://` and names no file (a URL list)."""
    if not value:
        return Engines(None, "", cert_path)
    if "://" in value and not Path(value).exists():
        return Engines(None, value, cert_path)
    return Engines(Path(value), "", cert_path)


def _engines(value: str, env: Mapping[str, str]) -> Engines:
    """The engines of `--docker-hosts`, read now so a wrong list fails before start-up;
    the invoker reads them again, the same way (`invoker.docker_hosts.listed_hosts`)."""
    cert = env.get("DOCKER_CERT_PATH")
    engines = docker_hosts_value(value, Path(cert) if cert else None)
    if engines.listed:
        from invoker.providers.docker_hosts import HostsFileError, listed_hosts

        try:
            listed_hosts(engines.hosts_file, engines.urls, engines.cert_path)
        except HostsFileError as exc:
            raise CliError(f"docker hosts: {exc}") from exc
    return engines


def _default_vm_provider(driver: str, engines: Engines) -> str:
    if engines.listed:
        return "docker-hosts"
    return "kubernetes" if driver == "kubernetes" else "local"


def stem_cells_value(values: list[str]) -> tuple[tuple[str, int, int], ...]:
    """Pure: `--stem-cells` values over the registry's counts, as (runtime, MB, count).

    `N` is the default runtime's count (the flag's meaning before there were others),
    `RUNTIME=N` another's; a runtime not named keeps its registry count.
    """
    from invoker.runtimes import DEFAULT_RUNTIME, REGISTRY, STEM_CELL_MEMORY_MB

    counts = {runtime.name: runtime.stem_cells for runtime in REGISTRY}
    for value in values:
        name, sep, number = value.rpartition("=")
        name = name if sep else DEFAULT_RUNTIME
        if name not in counts:
            raise CliError(
                f"--stem-cells: unknown runtime {name!r}; available: {', '.join(counts)}"
            )
        if not number.isdigit():
            raise CliError(f"--stem-cells takes N or RUNTIME=N (N >= 0), got {value!r}")
        counts[name] = int(number)
    return tuple((name, STEM_CELL_MEMORY_MB, n) for name, n in counts.items() if n > 0)


def _retention_days(flag: float | None, env: Mapping[str, str]) -> float:
    from gateway.config import retention_days

    try:
        return retention_days(flag, env)
    except ValueError as exc:
        raise CliError(f"activation retention: {exc}") from exc


def admin_key_for(data_dir: Path, env: Mapping[str, str] = os.environ) -> str:
    """NIMBUS_ADMIN_KEY, or the key kept in the data dir (generated on first use)."""
    from_env = env.get("NIMBUS_ADMIN_KEY")
    if from_env:
        return from_env
    path = data_dir / "admin.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "nmb_admin_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def raise_open_files_limit() -> None:
    """Each warm container holds a socket: lift the soft open-files limit to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
