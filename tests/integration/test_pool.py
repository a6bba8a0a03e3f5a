"""The warm pool on the real engine: scale to zero, bounded concurrency, stem cells, 429s."""

from __future__ import annotations

import asyncio
import time

import docker
import pytest

from gateway.keys import PLATFORM
from tests.conftest import Running

SLEEPY = "import time\ndef handler(e):\n    time.sleep(e.get('s', 0))\n    return e.get('i')\n"


def function_containers(client: docker.DockerClient, platform: Running, name: str) -> list:
    labels = [f"io.nimbus.managed={platform.config.owner}", f"io.nimbus.function={name}"]
    # sparse: no inspect per container, which races with the platform removing them
    return client.containers.list(all=True, sparse=True, filters={"label": labels})


async def eventually(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


@pytest.mark.platform(keep_alive_s=1.0, reap_interval_s=0.2, stem_cells=())
async def test_scale_to_zero_then_cold_again(platform: Running, docker_client) -> None:
    api = platform.api
    await api.deploy("idle", SLEEPY)
    status, _, headers = await api.invoke("idle")
    assert status == 200 and headers["X-Nimbus-Cold-Start"] == "true"
    assert len(function_containers(docker_client, platform, "idle")) == 1
    await eventually(lambda: function_containers(docker_client, platform, "idle") == [])
    status, _, headers = await api.invoke("idle")
    assert status == 200 and headers["X-Nimbus-Cold-Start"] == "true"


@pytest.mark.platform(keep_alive_s=0.5, reap_interval_s=0.1, stem_cells=())
async def test_reaper_never_removes_a_busy_container(platform: Running, docker_client) -> None:
    api = platform.api
    await api.deploy("long", SLEEPY, timeout_s=30)
    status, body, _ = await api.invoke("long", {"s": 2.5, "i": 7})
    assert (status, body) == (200, 7)
    # Reaped only after the call, once its keep-alive ran out.
    await eventually(lambda: function_containers(docker_client, platform, "long") == [])


@pytest.mark.platform(max_containers_per_function=4, max_wait_s=20.0, stem_cells=())
async def test_fifty_concurrent_calls_within_the_container_limit(
    platform: Running, docker_client
) -> None:
    api = platform.api
    await api.deploy("busy", SLEEPY, concurrency=1)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(platform.app[PLATFORM].ops.invoker.containers(name="busy")))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(api.invoke("busy", {"s": 0.1, "i": i}) for i in range(50)))
    watcher.cancel()
    assert [r[0] for r in results] == [200] * 50
    assert sorted(r[1] for r in results) == list(range(50))
    assert 1 <= peak <= 4
    assert len(function_containers(docker_client, platform, "busy")) <= 4
    _, acts, _ = await api.call("GET", "/v1/activations?function=busy&limit=50")
    waits = [a["wait_ms"] for a in acts["activations"]]
    assert max(waits) > 100, "calls past the limit queued for a container"


@pytest.mark.platform(stem_cells=(("python:3.11", 128, 2),))
async def test_stem_cells_serve_first_calls_and_are_refilled(platform: Running) -> None:
    api = platform.api
    invoker = platform.app[PLATFORM].ops.invoker
    await eventually(lambda: invoker.container_states()["prewarm"] == 2)
    await api.deploy("fast", "def handler(e):\n    return 'hi'\n")
    status, _, headers = await api.invoke("fast")
    assert status == 200 and headers["X-Nimbus-Cold-Start"] == "true"
    _, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    # A stem cell only needed /init: no container start in this call's init time.
    assert act["init_ms"] < 150, act
    await eventually(lambda: invoker.container_states()["prewarm"] == 2)
    # A network function cannot use a (network-less) stem cell and starts its own.
    await api.deploy("net", "def handler(e):\n    return 'n'\n", network=True)
    status, _, _ = await api.invoke("net")
    assert status == 200


@pytest.mark.platform(max_in_flight_per_tenant=2, stem_cells=())
async def test_tenant_quota_gives_429_with_retry_after(platform: Running) -> None:
    api = platform.api
    await api.deploy("q", SLEEPY, concurrency=4)
    results = await asyncio.gather(*(api.invoke("q", {"s": 1.0, "i": i}) for i in range(5)))
    statuses = sorted(r[0] for r in results)
    assert statuses.count(200) == 2 and statuses.count(429) == 3
    throttled = next(r for r in results if r[0] == 429)
    assert throttled[1]["error"]["type"] == "throttled"
    assert int(throttled[2]["Retry-After"]) >= 1
    # Nothing was lost: the accepted calls are the only activations.
    _, acts, _ = await api.call("GET", "/v1/activations?function=q")
    assert len(acts["activations"]) == 2
