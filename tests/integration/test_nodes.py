"""VM nodes on the real engine: placement by memory, cgroup parents, scale-out, consolidation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import docker
import pytest

from tests.conftest import Api, Running

TINY = (("tiny", 1.0, 512, "0.01"),)
SOURCE = "def handler(e):\n    return 'ok'\n"


async def nodes(api: Api) -> list[dict]:
    status, body, _ = await api.call("GET", "/v1/nodes")
    assert status == 200, body
    return body["nodes"]


async def node_of(api: Api, headers: dict[str, str]) -> str:
    _, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    return str(act["node"])


@pytest.mark.platform(node_flavors=TINY, min_nodes=2, max_nodes=3, placement_policy="first-fit")
async def test_placement_cgroups_and_scale_out(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    api = platform.api
    first, second = sorted(n["id"] for n in await nodes(api))
    await api.deploy("a", SOURCE, memory_mb=256)
    await api.deploy("b", SOURCE, memory_mb=384)
    status, _, headers = await api.invoke("a")
    assert status == 200 and await node_of(api, headers) == first
    # 256 of node 1's 512 MB are taken: 384 MB no longer fits there.
    status, _, headers = await api.invoke("b")
    assert status == 200 and await node_of(api, headers) == second

    # The container really runs under its node's cgroup, which the kernel limits.
    (container,) = [
        c
        for c in docker_client.containers.list(
            filters={"label": f"io.nimbus.managed={platform.config.owner}"}
        )
        if c.attrs["HostConfig"]["CgroupParent"].endswith(second)
    ]
    parent = container.attrs["HostConfig"]["CgroupParent"]
    limit = Path("/sys/fs/cgroup/memory") / parent.lstrip("/") / "memory.limit_in_bytes"
    assert int(limit.read_text()) == 512 * 2**20
    assert (limit.parent / container.id).is_dir()

    listing = {n["id"]: n for n in await nodes(api)}
    assert listing[first]["allocated"]["memory_mb"] == 256
    assert listing[second]["allocated"]["memory_mb"] == 384
    assert listing[first]["utilisation"]["memory"] == 0.5

    # Both nodes full for another 384 MB: the autoscaler adds node 3...
    await api.deploy("c", SOURCE, memory_mb=384)
    status, _, headers = await api.invoke("c")
    assert status == 200
    third = await node_of(api, headers)
    assert third not in (first, second) and len(await nodes(api)) == 3
    # 256, 384 and 384 MB on 512 MB nodes: no two share a node, so all three are needed
    # (as the next consolidation round plans it: reading the nodes never runs the planner).
    assert await packing_settles(api, {"nodes_ready": 3, "nodes_needed": 3})
    # The same figures for Grafana, from the consolidation round that runs every second.
    deadline = time.monotonic() + 10
    while True:
        async with api.session.get(api.url + "/metrics", headers=api.headers()) as resp:
            text = await resp.text()
        if "nimbus_nodes_needed 3.0" in text:
            break
        assert time.monotonic() < deadline, text[-2000:]
        await asyncio.sleep(0.2)
    assert "nimbus_nodes_ready 3.0" in text
    # ...and at the maximum the call gets a clear 429 (it was not run; retry later).
    await api.deploy("d", SOURCE, memory_mb=384)
    status, body, headers = await api.invoke("d")
    assert status == 429 and headers["Retry-After"], body
    assert "maximum of 3 nodes" in body["error"]["message"]


@pytest.mark.platform(
    node_flavors=TINY,
    min_nodes=1,
    max_nodes=3,
    min_node_age_s=0.0,
    keep_alive_s=1.0,
    reap_interval_s=0.2,
    placement_policy="first-fit",
)
async def test_an_emptied_node_is_released_after_consolidation(platform: Running) -> None:
    api = platform.api
    await api.deploy("big", SOURCE, memory_mb=384)
    await api.deploy("big2", SOURCE, memory_mb=384)
    assert (await api.invoke("big"))[0] == 200
    assert (await api.invoke("big2"))[0] == 200  # needs a second node
    assert len(await nodes(api)) == 2
    deadline = time.monotonic() + 30
    while len(await nodes(api)) > 1:  # containers expire, the spare node is drained, released
        assert time.monotonic() < deadline, await nodes(api)
        await asyncio.sleep(0.2)
    status, body, _ = await api.call("GET", "/v1/admin/economics")
    assert status == 200 and len(body["nodes"]) >= 2  # both nodes' hours are on the books


@pytest.mark.platform(node_flavors=TINY, min_nodes=1, max_nodes=2)
async def test_node_admin_api(platform: Running) -> None:
    api = platform.api
    status, added, _ = await api.call("POST", "/v1/nodes", {"flavor": "tiny"})
    assert status == 201 and added["state"] == "ready"
    status, body, _ = await api.call("POST", "/v1/nodes", {"flavor": "tiny"})
    assert status == 409 and "maximum" in body["error"]["message"]
    status, body, _ = await api.call("POST", "/v1/nodes", {"flavor": "huge"})
    assert status == 400 and body["error"]["field"] == "flavor"
    status, body, _ = await api.call("DELETE", f"/v1/nodes/{added['id']}")
    assert status == 202
    assert added["id"] not in [n["id"] for n in await nodes(api)]
    assert (await api.call("DELETE", "/v1/nodes/nope"))[0] == 404
    tenant = await api.tenant("curious")
    assert (await api.call("GET", "/v1/nodes", key=tenant))[0] == 403


async def packing_settles(api: Api, expected: dict[str, int], timeout_s: float = 10.0) -> bool:
    """True once GET /v1/nodes reports `expected` packing (a round runs every second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        _, listing, _ = await api.call("GET", "/v1/nodes")
        if listing["packing"] == expected:
            return True
        if time.monotonic() >= deadline:
            raise AssertionError(listing["packing"])
        await asyncio.sleep(0.1)
