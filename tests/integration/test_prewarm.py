"""Keep-alive decisions drive the real pool: hold, drop, and just-in-time pre-warms."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Hashable
from pathlib import Path
from typing import Any

import pytest

from invoker.api import FunctionSpec, InvokeRequest, Status
from invoker.containers.keepalive import KeepAliveDecision
from invoker.drivers.docker import DockerDriver
from invoker.images import image_tag
from invoker.runtime_client import RuntimeClient
from invoker.service import Invoker, InvokerConfig
from invoker.store.base import FunctionDraft
from invoker.store.sqlite import SqliteStore


class Scripted:
    """A keep-alive policy that answers what the test says."""

    name = "scripted"

    def __init__(self, decision: KeepAliveDecision) -> None:
        self.decision = decision
        self.observed: list[Hashable] = []

    def observe(self, key: Hashable, now: float, calls: int = 1) -> None:
        self.observed.append(key)

    def decide(self, key: Hashable, now: float) -> KeepAliveDecision:
        return self.decision

    def forget(self, key: Hashable) -> None: ...

    def export_state(self, key: Hashable) -> dict[str, Any] | None:
        return None

    def restore_state(self, key: Hashable, state: Any) -> None: ...


@pytest.fixture
async def rig(
    runtime_images, tmp_path: Path
) -> AsyncIterator[tuple[Invoker, SqliteStore, Scripted, FunctionSpec]]:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open()
    stored, _ = await store.put_function(
        FunctionDraft(
            "t",
            "f",
            "python:3.11",
            "main.handler",
            "source",
            b"def handler(e):\n    return 'ok'\n",
            128,
            10,
            1,
            {},
            False,
        ),
        time.time(),
    )
    run_dir = Path("/tmp") / f"nbpw-{uuid.uuid4().hex[:6]}"
    run_dir.mkdir()
    driver = DockerDriver(run_dir, image_tag)
    client = RuntimeClient()
    policy = Scripted(KeepAliveDecision(keep_alive_s=600))
    invoker = Invoker(
        driver,
        client,
        store,
        InvokerConfig(owner=f"test-{uuid.uuid4().hex[:8]}", stem_cells=(), reap_interval_s=0.1),
        keep_alive=policy,
    )
    await invoker.start()
    try:
        yield invoker, store, policy, stored.spec
    finally:
        await invoker.close()
        await client.close()
        await driver.close()
        await store.close()


async def call(invoker: Invoker, spec: FunctionSpec) -> bool:
    result = await invoker.invoke(InvokeRequest(uuid.uuid4().hex, spec, {}))
    assert result.status is Status.SUCCESS, result.error
    return result.cold_start


async def eventually(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_policy_sees_every_call_and_holds_the_container(rig) -> None:
    invoker, _, policy, spec = rig
    assert await call(invoker, spec) is True
    assert await call(invoker, spec) is False
    assert policy.observed == [("t", "f"), ("t", "f")]


async def test_zero_keep_alive_scales_to_zero_at_once(rig) -> None:
    invoker, _, policy, spec = rig
    policy.decision = KeepAliveDecision(keep_alive_s=0)
    await call(invoker, spec)
    await eventually(lambda: invoker.containers(name="f") == [])


async def test_prewarm_drops_the_container_and_brings_one_back_in_time(rig) -> None:
    invoker, _, policy, spec = rig
    policy.decision = KeepAliveDecision(keep_alive_s=30, prewarm_after_s=2)
    await call(invoker, spec)
    await eventually(lambda: invoker.containers(name="f") == [])  # unloaded while idle
    await eventually(lambda: invoker.container_states()["idle"] == 1)  # pre-warmed
    assert await call(invoker, spec) is False  # the next call finds it warm
