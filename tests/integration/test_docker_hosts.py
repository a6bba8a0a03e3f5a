"""The docker-hosts provider on two real engines: this machine's, and a second one on TLS.

The second engine (scripts/ensure-docker-host2.sh) is an independent dockerd with its own
data root, containerd and cgroup parent, reachable only at tcp://127.0.0.1:23760 with
mutual TLS: to Nimbus it is another VM's engine, with no shared directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import docker
import pytest

from invoker.api import RUNTIMES
from tests.conftest import Running, start_platform
from tests.engine2 import CERTS, PORT, ours, running_engine2
from tests.integration.test_nodes import packing_settles

SOURCE = "import socket\ndef handler(e):\n    return {'host': socket.gethostname(), 'e': e}\n"


@pytest.fixture(scope="module")
def engine2() -> Iterator[docker.DockerClient]:
    """The second engine, started if it is not running (tests/engine2.py)."""
    yield from running_engine2()


def hosts_file(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(
        f"""
[[host]]
id = "vm-1"
url = "unix:///var/run/docker.sock"
vcpu = 1
memory_mb = 512
price_per_hour = 0.01
flavor = "tiny"

[[host]]
id = "vm-2"
url = "tcp://127.0.0.1:{PORT}"
tls = "{CERTS}"
vcpu = 1
memory_mb = 512
price_per_hour = 0.01
flavor = "tiny"
"""
    )
    return path


async def node_of(running: Running, headers: dict[str, str]) -> str:
    _, act, _ = await running.api.call(
        "GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}"
    )
    return str(act["node"])


async def test_functions_spread_over_two_engines(
    runtime_images: dict[str, str],
    engine2: docker.DockerClient,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    # Nothing can be pulled: enlisting vm-2 must copy the runtime image from this machine.
    for tag in runtime_images.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine2.images.remove(tag, force=True)
    runner, running = await start_platform(
        tmp_path / "data",
        vm_provider="docker-hosts",
        docker_hosts_file=hosts_file(tmp_path),
        min_nodes=1,
        max_nodes=4,  # bounded by the list: two engines, two nodes
        placement_policy="first-fit",
        stem_cells=(),
    )
    api, owner = running.api, running.config.owner
    try:
        status, listing, _ = await api.call("GET", "/v1/nodes")
        assert status == 200 and [n["id"] for n in listing["nodes"]] == ["vm-1"]

        await api.deploy("a", SOURCE, memory_mb=256)
        await api.deploy("b", SOURCE, memory_mb=384)
        status, body, headers = await api.invoke("a", {"n": 1})
        assert status == 200 and body["e"] == {"n": 1}, body
        assert await node_of(running, headers) == "vm-1"
        # 256 of vm-1's 512 MB are taken: 384 MB enlists vm-2, the engine on TLS.
        status, body, headers = await api.invoke("b", {"n": 2})
        assert status == 200 and body["e"] == {"n": 2}, body
        assert await node_of(running, headers) == "vm-2"
        served = [tag for runtime, tag in runtime_images.items() if runtime in RUNTIMES]
        assert served and all(engine2.images.get(tag) for tag in served)
        (remote,) = ours(engine2, owner)
        assert body["host"] == remote["Id"][:12]  # it ran in the container on engine 2
        assert len(ours(docker_client, owner)) == 1  # and a on this machine's engine
        # Its proxy is published on the host, so it demands the container's token.
        port = remote["Ports"][0]["PublicPort"]
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/run", json={"value": {}}) as resp,
        ):
            assert resp.status == 401
        # Warm calls reuse it.
        status, _, headers = await api.invoke("b", {"n": 3})
        assert status == 200 and headers["X-Nimbus-Cold-Start"] == "false"

        _, listing, _ = await api.call("GET", "/v1/nodes")
        assert listing["provider"] == "docker-hosts"
        assert await packing_settles(api, {"nodes_ready": 2, "nodes_needed": 2})
        status, body, _ = await api.call("POST", "/v1/nodes", {"flavor": "small"})
        assert status == 400 and "known: tiny" in body["error"]["message"]
        # Both engines full for another 384 MB, and the list has no third: a clear 429.
        await api.deploy("c", SOURCE, memory_mb=384)
        status, body, headers = await api.invoke("c")
        assert status == 429 and headers["Retry-After"], body
        assert "maximum of 2 nodes" in body["error"]["message"]

        # Draining vm-2 removes its containers from engine 2 and hands the engine back.
        status, _, _ = await api.call("DELETE", "/v1/nodes/vm-2")
        assert status == 202
        # The node is released on the pool's next round once it is empty.
        deadline = time.monotonic() + 30
        while True:
            status, listing, _ = await api.call("GET", "/v1/nodes")
            if not ours(engine2, owner) and [n["id"] for n in listing["nodes"]] == ["vm-1"]:
                break
            assert time.monotonic() < deadline, (ours(engine2, owner), listing)
            await asyncio.sleep(0.2)
        # With vm-1 busy with a, c (384 MB) enlists vm-2 again.
        status, _, headers = await api.invoke("c")
        assert status == 200 and await node_of(running, headers) == "vm-2"
    finally:
        await api.session.close()
        await runner.cleanup()
    assert ours(engine2, owner) == []  # a clean stop leaves nothing on either engine
    assert ours(docker_client, owner) == []


async def test_a_list_of_urls_sizes_each_engine_from_docker_info(
    runtime_images: dict[str, str], engine2: docker.DockerClient, tmp_path: Path
) -> None:
    runner, running = await start_platform(
        tmp_path / "data",
        vm_provider="docker-hosts",
        docker_hosts_urls=f"unix:///var/run/docker.sock,tcp://127.0.0.1:{PORT}",
        docker_cert_path=CERTS,
        min_nodes=2,
        stem_cells=(),
    )
    api = running.api
    try:
        _, listing, _ = await api.call("GET", "/v1/nodes")
        info = engine2.info()
        nodes = {n["id"]: n for n in listing["nodes"]}
        assert sorted(nodes) == ["vm-1", "vm-2"]
        assert nodes["vm-2"]["capacity"] == {
            "vcpu": float(info["NCPU"]),
            "memory_mb": info["MemTotal"] // 2**20,
        }
        await api.deploy("hi", SOURCE)
        status, body, _ = await api.invoke("hi", {"n": 1})
        assert status == 200 and body["e"] == {"n": 1}
    finally:
        await api.session.close()
        await runner.cleanup()
