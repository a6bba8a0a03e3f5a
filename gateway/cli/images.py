"""`nimbus images build`: the runtime images, built on the local Docker engine."""

from __future__ import annotations

import argparse

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
