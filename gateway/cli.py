"""`nimbus`: run the platform, build its images, and talk to a running gateway."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
DRIVERS = ["auto", "docker", "process", "kubernetes"]


class CliError(Exception):
    """A failure to report on one line and exit 1."""


# ---- talking to a gateway ----


def _api(method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    url = os.environ.get("NIMBUS_URL", DEFAULT_URL).rstrip("/") + path
    key = os.environ.get("NIMBUS_API_KEY")
    if not key:
        raise CliError("set NIMBUS_API_KEY to your API key (make up prints the admin key)")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=960) as resp:
            raw = resp.read()
            status, headers = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    except urllib.error.URLError as exc:
        raise CliError(f"cannot reach the gateway at {url}: {exc.reason}") from exc
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    return status, headers, payload


def _fail(status: int, payload: Any) -> CliError:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        err = payload["error"]
        where = f" (field: {err['field']})" if err.get("field") else ""
        return CliError(f"error {status}: {err.get('message')}{where}")
    return CliError(f"error {status}: {payload}")


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def package_code(path: Path) -> dict[str, str]:
    """A file becomes `{"source"}`; a .zip or a directory becomes `{"zip"}`."""
    if path.is_dir():
        from gateway.packaging import PackagingError, build_zip

        # A requirements.txt is vendored (wheels for the runtime's Python and platform).
        try:
            data = build_zip(path, lambda line: print(line, file=sys.stderr, flush=True))
        except PackagingError as exc:
            raise CliError(str(exc)) from exc
        return {"zip": base64.b64encode(data).decode()}
    if path.suffix == ".zip":
        return {"zip": base64.b64encode(path.read_bytes()).decode()}
    if path.is_file():
        return {"source": path.read_text()}
    raise CliError(f"{path}: no such file or directory")


def cmd_deploy(args: argparse.Namespace) -> int:
    """Upload a function from a file or directory."""
    body: dict[str, Any] = {
        "runtime": args.runtime,
        "handler": args.handler,
        "code": package_code(Path(args.path)),
        "memory_mb": args.memory,
        "timeout_s": args.timeout,
        "concurrency": args.concurrency,
        "network": args.network,
        "env": dict(_pair(item) for item in args.env),
    }
    status, _, payload = _api("PUT", f"/v1/functions/{args.name}", body)
    if status not in (200, 201):
        raise _fail(status, payload)
    verb = "created" if status == 201 else "updated"
    print(f"{verb} {payload['name']} version {payload['version']} ({payload['code_sha256'][:12]})")
    return 0


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep:
        raise CliError(f"--env takes KEY=VALUE, got {item!r}")
    return key, value


def cmd_invoke(args: argparse.Namespace) -> int:
    """Invoke a function and print its result."""
    try:
        event = json.loads(args.event) if args.event else {}
    except ValueError as exc:
        raise CliError(f"the event is not valid JSON: {exc}") from exc
    status, headers, payload = _api("POST", f"/v1/functions/{args.name}/invoke", event)
    if status != 200:
        raise _fail(status, payload)
    _print(payload)
    if args.verbose:
        print(
            f"activation {headers.get('X-Nimbus-Activation-Id')} "
            f"cold={headers.get('X-Nimbus-Cold-Start')} "
            f"duration={headers.get('X-Nimbus-Duration-Ms')} ms",
            file=sys.stderr,
        )
    return 0


def cmd_functions(args: argparse.Namespace) -> int:
    """List the caller's functions."""
    status, _, payload = _api("GET", "/v1/functions")
    if status != 200:
        raise _fail(status, payload)
    for f in payload["functions"]:
        print(f"{f['name']:<24} v{f['version']:<4} {f['memory_mb']:>5} MB  {f['handler']}")
    return 0


def cmd_activations(args: argparse.Namespace) -> int:
    """List recent activations."""
    query = f"?limit={args.limit}" + (f"&function={args.function}" if args.function else "")
    status, _, payload = _api("GET", f"/v1/activations{query}")
    if status != 200:
        raise _fail(status, payload)
    for a in payload["activations"]:
        cold = "cold" if a["cold_start"] else "warm"
        print(
            f"{a['activation_id']}  {a['function']:<20} {a['status']:<18} "
            f"{a['duration_ms'] or 0:>9.1f} ms  {cold}"
        )
    return 0


def cmd_activation(args: argparse.Namespace) -> int:
    """Show one activation with its logs."""
    status, _, payload = _api("GET", f"/v1/activations/{args.id}")
    if status != 200:
        raise _fail(status, payload)
    _print(payload)
    return 0


def cmd_bill(args: argparse.Namespace) -> int:
    """Print the caller's bill as a table (or CSV)."""
    query = urllib.parse.urlencode(
        {k: v for k, v in (("from", args.since), ("to", args.until), ("group_by", args.by)) if v}
    )
    if args.csv:
        status, _, payload = _api("GET", f"/v1/billing?{query}&format=csv")
        if status != 200:
            raise _fail(status, payload)
        print(payload, end="")
        return 0
    status, _, payload = _api("GET", f"/v1/billing?{query}")
    if status != 200:
        raise _fail(status, payload)
    print(
        f"bill for {payload['tenant']} from {payload['from']} to {payload['to']} "
        f"({payload['currency']})"
    )
    header = f"{args.by:<28}{'calls':>8}{'GB-s':>16}{'requests':>12}{'compute':>12}{'total':>12}"
    print(header)
    print("-" * len(header))
    for line in [*payload["lines"], payload["total"]]:
        if line is payload["total"]:
            print("-" * len(header))
        print(
            f"{line['key']:<28}{line['invocations']:>8}{line['billed_gb_seconds']:>16}"
            f"{line['request_cost']:>12}{line['compute_cost']:>12}{line['total']:>12}"
        )
    return 0


def cmd_tenant_create(args: argparse.Namespace) -> int:
    """Admin: create a tenant and print its API key once."""
    status, _, payload = _api("POST", "/v1/tenants", {"name": args.name})
    if status != 201:
        raise _fail(status, payload)
    print(f"tenant {payload['name']} created; API key (shown once): {payload['api_key']}")
    return 0


# ---- running the platform ----


def admin_key_for(data_dir: Path) -> str:
    """NIMBUS_ADMIN_KEY, or the key kept in the data dir (generated on first use)."""
    from_env = os.environ.get("NIMBUS_ADMIN_KEY")
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


def _docker_hosts(value: str) -> tuple[Path | None, str]:
    """`--docker-hosts`: a hosts file, or a comma-separated list of DOCKER_HOST URLs."""
    if not value:
        return None, ""
    if "://" in value and not Path(value).exists():
        return None, value
    return Path(value), ""


def cmd_serve(args: argparse.Namespace) -> int:
    """Run gateway and invoker in this process until interrupted."""
    from gateway import server
    from gateway.app import create_app
    from gateway.config import Config, retention_days

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from gateway.pricebook import PriceBook, PriceBookError, load_price_book

    data_dir = Path(args.data_dir)
    price_path = args.price_book or os.environ.get("NIMBUS_PRICE_BOOK")
    try:
        prices = load_price_book(price_path) if price_path else PriceBook()
    except (PriceBookError, OSError) as exc:
        raise CliError(f"price book: {exc}") from exc
    env = os.environ
    driver = args.driver or env.get("NIMBUS_DRIVER") or "auto"
    if driver not in DRIVERS:
        raise CliError(f"unknown driver {driver!r}; choose {', '.join(DRIVERS)}")
    hosts_arg = args.docker_hosts or env.get("NIMBUS_DOCKER_HOSTS") or ""
    hosts_file, hosts_urls = _docker_hosts(hosts_arg)
    cert_path = Path(env["DOCKER_CERT_PATH"]) if env.get("DOCKER_CERT_PATH") else None
    default_vms = "kubernetes" if driver == "kubernetes" else "local"
    if hosts_arg:
        default_vms = "docker-hosts"
        from invoker.docker_hosts import (
            HostsFileError,
            host_flavors,
            hosts_from_urls,
            load_docker_hosts,
        )

        try:  # a bad list fails here, clearly, not at start-up
            if hosts_file is not None:
                hosts = load_docker_hosts(hosts_file)
            else:
                hosts = hosts_from_urls(hosts_urls, cert_path)
            if all(h.vcpu is not None and h.memory_mb is not None for h in hosts):
                host_flavors(hosts)
        except HostsFileError as exc:
            raise CliError(f"docker hosts: {exc}") from exc
    try:
        retention = retention_days(args.activation_retention_days, env)
    except ValueError as exc:
        raise CliError(f"activation retention: {exc}") from exc
    config = Config(
        data_dir=data_dir,
        host=args.host,
        port=args.port,
        admin_key=admin_key_for(data_dir),
        driver=driver,
        vm_provider=args.vm_provider or env.get("NIMBUS_VM_PROVIDER") or default_vms,
        docker_hosts_file=hosts_file,
        docker_hosts_urls=hosts_urls,
        docker_cert_path=cert_path,
        placement_policy=args.placement,
        k8s_namespace=env.get("NIMBUS_K8S_NAMESPACE") or "nimbus-functions",
        k8s_runtime_class=env.get("NIMBUS_K8S_RUNTIME_CLASS", ""),
        k8s_image_prefix=env.get("NIMBUS_K8S_IMAGE_PREFIX") or "nimbus/",
        store_url=env.get("NIMBUS_STORE_URL", ""),
        price_book=prices,
        public_metrics=args.public_metrics,
        stem_cells=(("python:3.11", 128, args.stem_cells),) if args.stem_cells else (),
        keep_alive_s=args.keep_alive or 600.0,
        keep_alive_policy="fixed" if args.keep_alive else args.keep_alive_policy,
        activation_retention_days=retention,
    )
    if driver == "process":
        print("warning: the process driver runs functions with no isolation", file=sys.stderr)
    raise_open_files_limit()
    print(f"nimbus: serving on http://{args.host}:{args.port} (data: {data_dir})", flush=True)
    server.run(create_app(config), args.host, args.port, access_log=args.access_log)
    return 0


def cmd_images_build(args: argparse.Namespace) -> int:
    """Build the runtime images, printing progress."""
    import docker

    from invoker.images import build_runtime_images

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:
        raise CliError(f"no Docker engine answers ({exc}); run scripts/ensure-docker.sh") from exc
    tags = build_runtime_images(client, lambda line: print(line, flush=True), force=args.force)
    for runtime, tag in tags.items():
        print(f"{runtime}: {tag}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="nimbus", description="Nimbus serverless platform")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway and invoker")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", default=".nimbus/data")
    serve.add_argument(
        "--driver", choices=DRIVERS, help="container driver (default: $NIMBUS_DRIVER or auto)"
    )
    serve.add_argument(
        "--vm-provider",
        choices=["local", "docker-hosts", "kubernetes", "none"],
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
        "--placement", default="best-fit", help="placement policy (docs/performance.md)"
    )
    serve.add_argument(
        "--stem-cells", type=int, default=2, help="prewarmed python:3.11 128 MB containers"
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
        "--activation-retention-days",
        type=float,
        help="delete activations (results, logs) older than this; 0 keeps them "
        "(default: $NIMBUS_ACTIVATION_RETENTION_DAYS, else 7); usage records are kept",
    )
    serve.set_defaults(func=cmd_serve)

    images = sub.add_parser("images", help="runtime images")
    images_sub = images.add_subparsers(dest="images_command", required=True)
    build = images_sub.add_parser("build", help="build the runtime images")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.set_defaults(func=cmd_images_build)

    deploy = sub.add_parser("deploy", help="create or update a function")
    deploy.add_argument("name")
    deploy.add_argument("path", help="a .py file, a .zip, or a directory")
    deploy.add_argument("--handler", required=True, help="module.function")
    deploy.add_argument("--runtime", default="python:3.11")
    deploy.add_argument("--memory", type=int, default=128, help="MB (128-4096)")
    deploy.add_argument("--timeout", type=float, default=30, help="seconds (1-900)")
    deploy.add_argument("--concurrency", type=int, default=1)
    deploy.add_argument("--network", action="store_true", help="give the function network")
    deploy.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    deploy.set_defaults(func=cmd_deploy)

    inv = sub.add_parser("invoke", help="invoke a function")
    inv.add_argument("name")
    inv.add_argument("event", nargs="?", default="", help="JSON object")
    inv.add_argument("-v", "--verbose", action="store_true", help="print activation details")
    inv.set_defaults(func=cmd_invoke)

    fns = sub.add_parser("functions", help="list functions")
    fns.set_defaults(func=cmd_functions)

    acts = sub.add_parser("activations", help="list recent activations")
    acts.add_argument("--function")
    acts.add_argument("--limit", type=int, default=20)
    acts.set_defaults(func=cmd_activations)

    act = sub.add_parser("activation", help="show one activation with its logs")
    act.add_argument("id")
    act.set_defaults(func=cmd_activation)

    bill = sub.add_parser("bill", help="your bill, per function or per day")
    bill.add_argument("--from", dest="since", help="ISO date/datetime or epoch seconds")
    bill.add_argument("--to", dest="until", help="ISO date/datetime or epoch seconds")
    bill.add_argument("--by", default="function", choices=["function", "day"])
    bill.add_argument("--csv", action="store_true", help="print CSV")
    bill.set_defaults(func=cmd_bill)

    tenant = sub.add_parser("tenant", help="tenants (admin)")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_sub.add_parser("create", help="create a tenant and print its key")
    create.add_argument("name")
    create.set_defaults(func=cmd_tenant_create)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nimbus` console script."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"nimbus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
