"""Ballooning and memory overcommit on the real engine: idle containers deflated in their
cgroup, inflated before each call, and an overcommitted node that never OOM-kills a call."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import Api, Running

MB = 2**20
NODE = (("half", 2.0, 512, "0.01"),)
BALLOON = {
    "node_flavors": NODE,
    "min_nodes": 1,
    "max_nodes": 1,
    "balloon_idle_grace_s": 0.3,
    "reap_interval_s": 0.2,
    "keep_alive_s": 600.0,
}
# Touches `mb` MB (every page) on each call, and says what memory limit it ran under.
TOUCH = """
def handler(event):
    n = int(event.get("mb", 0) * 2**20)
    block = bytearray(n)
    for i in range(0, n, 4096):
        block[i] = 1
    with open("/sys/fs/cgroup/memory/memory.limit_in_bytes") as f:
        return {"touched": n, "limit": int(f.read())}
"""


def limits(client: docker.DockerClient, owner: str) -> dict[str, int]:
    """Each of the platform's containers (by function) -> its cgroup memory limit now."""
    out = {}
    for c in client.containers.list(filters={"label": f"io.nimbus.managed={owner}"}):
        function = c.labels.get("io.nimbus.function")
        if function is None:
            continue
        parent = c.attrs["HostConfig"]["CgroupParent"].strip("/") or "docker"
        path = Path("/sys/fs/cgroup/memory") / parent / c.id / "memory.limit_in_bytes"
        try:
            out[function] = int(path.read_text())
        except OSError:
            continue  # removed meanwhile
    return out


async def until_deflated(
    client: docker.DockerClient, owner: str, functions: set[str], seconds: float = 15
) -> dict[str, int]:
    """Wait until every container of `functions` runs below 128 MB."""
    deadline = time.monotonic() + seconds
    while True:
        now = await asyncio.to_thread(limits, client, owner)
        if all(f in now and now[f] < 128 * MB for f in functions):
            return now
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.1)


async def the_node(api: Api) -> dict[str, Any]:
    status, body, _ = await api.call("GET", "/v1/nodes")
    assert status == 200, body
    (node,) = body["nodes"]
    return dict(node)


@pytest.mark.platform(**BALLOON)
async def test_idle_containers_deflate_in_their_cgroup_and_calls_run_inflated(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    api, owner = platform.api, platform.config.owner
    await api.deploy("touch", TOUCH, memory_mb=128)
    status, body, _ = await api.invoke("touch", {"mb": 100})
    assert status == 200 and body["limit"] == 128 * MB, body

    deflated = (await until_deflated(docker_client, owner, {"touch"}))["touch"]
    # The working set of an idle runtime plus headroom, in 4 MB steps, at least 32 MB.
    assert 32 * MB <= deflated < 128 * MB and deflated % (4 * MB) == 0
    node = await the_node(api)
    assert node["allocated"]["memory_mb"] == 128
    assert node["resident"]["memory_mb"] == deflated // MB
    assert node["overcommit_ratio"] == 0.25
    assert node["memory_pressure"] == round(deflated / MB / 512, 4)

    # The next call is inflated before it runs: it sees, and can use, its full 128 MB.
    for _ in range(3):
        status, body, _ = await api.invoke("touch", {"mb": 100})
        assert status == 200 and body == {"touched": 100 * MB, "limit": 128 * MB}, body
        await until_deflated(docker_client, owner, {"touch"})

    async with api.session.get(api.url + "/metrics", headers=api.headers()) as resp:
        text = await resp.text()
    assert "nimbus_node_memory_resident_mb{" in text
    assert "nimbus_node_memory_overcommit_ratio{" in text
    assert "nimbus_balloon_inflate_seconds_count 3.0" in text


@pytest.mark.platform(**BALLOON, memory_overcommit=2.0)
async def test_an_overcommitted_node_never_fails_a_call_for_memory(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    api, owner = platform.api, platform.config.owner
    names = [f"f{i}" for i in range(9)]
    for name in names:
        await api.deploy(name, TOUCH, memory_mb=128)
    # Eight warm 128 MB containers on a 512 MB node: each fits once the others deflated.
    for name in names[:8]:
        status, body, _ = await api.invoke(name, {"mb": 1})
        assert status == 200, body
        await until_deflated(docker_client, owner, {name})
    node = await the_node(api)
    assert node["allocated"]["memory_mb"] == 1024 and node["overcommit_ratio"] == 2.0
    assert node["resident"]["memory_mb"] < 512

    samples: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(await the_node(api))
            await asyncio.sleep(0.05)

    async def caller(seed: int, calls: int) -> list[tuple[int, Any]]:
        rng = random.Random(seed)
        out = []
        for _ in range(calls):
            # Touch 80 % of the function's memory on every call, at full size or not at all.
            status, body, _ = await api.invoke(rng.choice(names), {"mb": 128 * 0.8})
            out.append((status, body))
            await asyncio.sleep(rng.choice((0.0, 0.0, 0.5)))  # idle long enough to deflate
        return out

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*(caller(seed, 40) for seed in range(3)))
    done.set()
    await sampler

    outcomes = [r for rs in results for r in rs]
    failed = [(s, b) for s, b in outcomes if s != 200]
    assert failed == [], failed[:5]
    assert all(b["limit"] == 128 * MB and b["touched"] > 100 * MB for _, b in outcomes)
    # The cap holds and the limits never add up to more than the node's memory.
    assert samples and all(s["overcommit_ratio"] <= 2.0 for s in samples)
    assert all(s["resident"]["memory_mb"] <= 512 for s in samples)
    assert max(len(s["containers"]) for s in samples) <= 8
    for container in docker_client.containers.list(
        all=True, filters={"label": f"io.nimbus.managed={owner}"}
    ):
        assert not container.attrs["State"]["OOMKilled"], container.name
