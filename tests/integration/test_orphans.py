"""A server killed with SIGKILL leaves containers behind; the next start removes them."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import docker

from tests.conftest import ADMIN_KEY, free_port, serve


def request(url: str, method: str = "GET", body: object = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {ADMIN_KEY}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, json.loads(resp.read())


def test_orphans_removed_on_next_start(
    runtime_images, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(data_dir, port)
    try:
        body = {
            "runtime": "python:3.11",
            "handler": "main.handler",
            "code": {"source": "def handler(e):\n    return 1\n"},
        }
        assert request(f"{url}/v1/functions/o", "PUT", body)[0] == 201
        assert request(f"{url}/v1/functions/o/invoke", "POST", {})[1] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = docker_client.containers.list(all=True, filters={"label": "io.nimbus.function=o"})
    assert left, "the killed server should have left its container behind"
    owner = left[0].labels["io.nimbus.managed"]
    old_instance = left[0].labels["io.nimbus.instance"]
    assert (
        len(
            docker_client.containers.list(
                all=True, filters={"label": f"io.nimbus.instance={old_instance}"}
            )
        )
        >= 2
    ), "stem cells and the tenant's netns holder are left behind too"

    proc = serve(data_dir, port)
    try:
        remaining = docker_client.containers.list(
            all=True, filters={"label": f"io.nimbus.instance={old_instance}"}
        )
        assert remaining == []
        # The function survived the restart (SQLite) and runs again.
        assert request(f"{url}/v1/functions/o/invoke", "POST", {})[1] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert (
        docker_client.containers.list(all=True, filters={"label": f"io.nimbus.managed={owner}"})
        == []
    )
