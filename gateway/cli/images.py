"""`nimbus images build`: the runtime images, built on the local Docker engine;
`nimbus images import FILE.tar`: an image tarball loaded into every engine of the pool."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gateway.cli.errors import CliError


def cmd_images_build(args: argparse.Namespace) -> int:
    """Build the runtime images, printing progress."""
    import docker  # only this command needs the Docker SDK: import it here

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


def cmd_images_import(args: argparse.Namespace) -> int:
    """Load a `docker save` tarball into this machine's engine and every docker-hosts
    engine `--docker-hosts` (or $NIMBUS_DOCKER_HOSTS) lists; 1 if any engine failed."""
    from gateway.cli.serve import docker_hosts_value
    from invoker.image_import import ImportFailed, import_image, pool_engines

    listed = args.docker_hosts or os.environ.get("NIMBUS_DOCKER_HOSTS") or ""
    cert = os.environ.get("DOCKER_CERT_PATH")
    hosts = docker_hosts_value(listed, Path(cert) if cert else None)
    try:
        engines = pool_engines(hosts.hosts_file, hosts.urls, hosts.cert_path)
        outcomes = import_image(Path(args.file), engines, lambda line: print(line, flush=True))
    except (ImportFailed, ValueError, OSError) as exc:
        raise CliError(f"images import: {exc}") from exc
    return 0 if all(o.error is None for o in outcomes) else 1
