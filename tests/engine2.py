"""The second Docker engine (scripts/ensure-docker-host2.sh) as a test fixture.

An independent dockerd with its own data root, containerd and cgroup parent, reachable
only at tcp://127.0.0.1:23760 with mutual TLS: to Nimbus it is another VM's engine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from invoker.drivers.docker_remote import engine_client
from invoker.providers.docker_hosts import DockerHost
from tests.conftest import OWNERS

ROOT = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("NIMBUS_HOST2_PORT", "23760"))
CERTS = Path(os.environ.get("NIMBUS_HOST2_CERTS", "/var/lib/nimbus-docker2-certs")) / "client"


def ensure_engine2() -> None:
    """Start the second engine unless it answers (root, like `make test`)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-docker-host2.sh")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        pytest.fail(f"the second Docker engine did not start:\n{done.stdout}{done.stderr}")


def stop_engine2(*, keep_containers: bool) -> None:
    """Stop the second engine; with `keep_containers`, as a dockerd restart would (its
    containers stopped, not removed)."""
    env = {**os.environ, "NIMBUS_HOST2_KEEP_CONTAINERS": "1" if keep_containers else "0"}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stop-docker-host2.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"


def running_engine2() -> Iterator[docker.DockerClient]:
    """A client of the second engine, started if it is not running; for a fixture to
    `yield from` (each test module declares its own, so no import shadows a parameter)."""
    primary_bridge = Path("/sys/class/net/docker0")
    had_bridge = primary_bridge.exists()
    ensure_engine2()
    # dockerd deletes `docker0` on some flags; the primary engine's builds need it.
    assert primary_bridge.exists() or not had_bridge, "starting engine 2 removed docker0"
    client = engine_client(DockerHost("vm-2", f"tcp://127.0.0.1:{PORT}", CERTS))
    yield client
    # Whatever a failed test left on engine 2 (the session's cleanup sweeps only engine 1).
    ensure_engine2()  # a test that restarts it may have failed while it was down
    for container in client.api.containers(all=True, filters={"label": "io.nimbus.managed"}):
        if (container.get("Labels") or {}).get("io.nimbus.managed") in OWNERS:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(container["Id"], force=True)
    client.close()


def ours(client: docker.DockerClient, owner: str, *, stopped: bool = False) -> list[dict[str, Any]]:
    """Function containers of a platform on an engine (not the netns holders); with
    `stopped`, the ones that are not running as well."""
    found = client.api.containers(all=stopped, filters={"label": f"io.nimbus.managed={owner}"})
    return [c for c in found if "io.nimbus.role" not in (c.get("Labels") or {})]
