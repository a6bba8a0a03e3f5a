"""Ballooning and memory overcommit in the invoker's call path (fake driver, simulated nodes,
injected clock): idle containers deflate after their grace, every call runs at full memory,
an overcommitted node evicts idle containers or sends the call elsewhere, and never holds more
than its memory at the limits. tests/integration/test_ballooning.py proves it on real Docker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from invoker.api import FunctionSpec, Status, Throttled
from invoker.containers.balloon import BalloonConfig, target_mb
from invoker.containers.cgroups import LimitWrite
from invoker.containers.keepalive import FixedTTL
from invoker.drivers.base import ContainerHandle
from invoker.nodes.model import Flavor, Node
from invoker.nodes.node_pool import NodePool, NodePoolConfig
from invoker.nodes.placement import FirstFit, PlacementLimits
from invoker.providers.simulated import SimulatedProvider
from invoker.runtime_client import RunResponse
from invoker.service import Invoker, InvokerConfig
from invoker.store.factory import open_store
from tests.unit.call_path_fakes import (
    Clock,
    FakeDriver,
    FakeMeter,
    FakeRuntime,
    Ledger,
    Rig,
    echo,
    until,
)

TINY = Flavor("tiny", 4.0, 512, 0.01)
WORKING_SET = 20.0
DEFLATED = target_mb(128, WORKING_SET, BalloonConfig())  # 36 MB


class Cgroup(FakeMeter):
    """A container's cgroup: its memory limit and working set, frozen between calls."""

    def __init__(self, address: str, ledger: Ledger, memory_mb: int) -> None:
        super().__init__(address, ledger)
        self.address = address
        self.limit_mb = memory_mb
        self.freezer = Path("/fake/freezer.state")
        self.writable = True

    def working_set_mb(self) -> float:
        return WORKING_SET

    def set_memory_limit(self, limit_mb: int) -> LimitWrite:
        if not self.writable:
            return LimitWrite.UNSUPPORTED
        self.limit_mb = limit_mb
        return LimitWrite.DONE


class BalloonDriver(FakeDriver):
    """The fake driver with cgroups that have a memory limit, and an engine that resizes."""

    def __init__(self, clock: Clock, ledger: Ledger) -> None:
        super().__init__(clock, ledger)
        self.cgroups: dict[str, Cgroup] = {}
        self.engine_resizes: list[tuple[str, int]] = []
        self.writable = True

    def call_meter(self, handle: ContainerHandle) -> Cgroup:
        cgroup = self.cgroups.get(handle.id)
        if cgroup is None:
            memory = self.live[handle.id].memory_mb
            cgroup = self.cgroups[handle.id] = Cgroup(handle.address, self._ledger, memory)
            cgroup.writable = self.writable
        return cgroup

    async def set_memory_limit(self, handle: ContainerHandle, limit_mb: int) -> bool:
        await asyncio.sleep(0)  # the engine answers later
        self.engine_resizes.append((handle.id, limit_mb))
        self.cgroups[handle.id].limit_mb = limit_mb
        return True


@asynccontextmanager
async def balloon_rig(
    tmp_path: Path, *, overcommit: float = 2.0, writable: bool = True
) -> AsyncIterator[Rig]:
    """An invoker with ballooning on, on one simulated 512 MB node overcommitted up to
    `overcommit`; the keep-alive is long, so only the balloon and evictions move things."""
    clock, ledger = Clock(), Ledger()
    store = open_store(None, tmp_path)
    await store.open()
    limits = PlacementLimits()
    nodes = NodePool(
        SimulatedProvider(clock.now),
        FirstFit(limits),
        limits,
        NodePoolConfig((TINY,), min_nodes=1, max_nodes=1, memory_overcommit=overcommit),
        clock=clock.now,
    )
    await nodes.start()
    driver, runtime = BalloonDriver(clock, ledger), FakeRuntime(clock, ledger)
    driver.writable = writable
    config = InvokerConfig(owner="unit", stem_cells=(), host_cpus=2.0, balloon=BalloonConfig())
    invoker = Invoker(
        driver,  # type: ignore[arg-type]  # structurally a ContainerDriver
        runtime,  # type: ignore[arg-type]
        store,
        config,
        clock=clock.now,
        wall=clock.wall,
        keep_alive=FixedTTL(600.0),
        nodes=nodes,
    )
    try:
        yield Rig(invoker, store, driver, runtime, clock, ledger, nodes)
    finally:
        await invoker.close()
        await nodes.close()
        await store.close()


def the_node(r: Rig) -> Node:
    assert r.nodes is not None
    (node,) = r.nodes.nodes.values()
    return node


def cgroup_of(r: Rig, function: str) -> Cgroup:
    driver = r.driver
    assert isinstance(driver, BalloonDriver)
    (cid,) = [c for c, s in driver.live.items() if s.labels.get("io.nimbus.function") == function]
    return driver.cgroups[cid]


async def idle_and_deflate(r: Rig) -> int:
    """Let the idle grace pass and run the maintenance step that deflates."""
    r.clock.advance(BalloonConfig().idle_grace_s + 0.5)
    assert r.invoker.balloons is not None
    return await r.invoker.balloons.deflate_idle()


def watch_calls(r: Rig) -> list[str]:
    """Check, as each call enters its container, that it runs at full memory and that the
    node's limits fit its memory; returns the list of violations."""
    violations: list[str] = []
    driver = r.driver
    assert isinstance(driver, BalloonDriver)

    async def run(address: str, payload: dict[str, Any]) -> RunResponse:
        (cgroup,) = [c for c in driver.cgroups.values() if c.address == address]
        if cgroup.limit_mb != payload["memory_limit_mb"]:
            violations.append(f"{address} ran at {cgroup.limit_mb} MB")
        node = the_node(r)
        if node.resident_mb > node.flavor.memory_mb:
            violations.append(f"node holds {node.resident_mb} MB")
        return await echo(address, payload)

    r.runtime.on_run = run
    return violations


async def test_an_idle_container_deflates_after_its_grace_and_inflates_before_a_call(
    tmp_path: Path,
) -> None:
    async with balloon_rig(tmp_path) as r:
        spec = await r.deploy("a")
        violations = watch_calls(r)
        assert (await r.call(spec)).status is Status.SUCCESS
        assert r.invoker.balloons is not None
        assert await r.invoker.balloons.deflate_idle() == 0  # still within its idle grace
        assert await idle_and_deflate(r) == 1
        cgroup = cgroup_of(r, "a")
        assert cgroup.limit_mb == DEFLATED
        assert the_node(r).resident_mb == DEFLATED
        assert the_node(r).allocated_memory_mb == 128

        warm = await r.call(spec)
        assert warm.status is Status.SUCCESS and warm.cold_start is False
        assert violations == []
        assert cgroup.limit_mb == 128 and the_node(r).resident_mb == 128
        assert len(r.invoker.balloons.inflations_s) == 1


async def test_an_overcommitted_node_holds_more_idle_containers_up_to_its_cap(
    tmp_path: Path,
) -> None:
    async with balloon_rig(tmp_path, overcommit=2.0) as r:
        specs = [await r.deploy(f"f{i}") for i in range(9)]
        violations = watch_calls(r)
        for spec in specs[:8]:
            assert (await r.call(spec)).status is Status.SUCCESS
            await idle_and_deflate(r)
        node = the_node(r)
        # Eight 128 MB containers on a 512 MB node: twice its memory, the cap.
        assert node.allocated_memory_mb == 1024 and node.overcommit_ratio == 2.0
        assert node.resident_mb == 8 * DEFLATED
        # A ninth would pass the cap: the idle container of least keep-alive value goes.
        assert (await r.call(specs[8])).status is Status.SUCCESS
        assert node.allocated_memory_mb == 1024 and len(r.driver.destroyed) == 1
        assert "f0" not in r.driver.functions()

        # Three calls held in their containers at once: inflating the third needs room,
        # which idle containers give (evicted, lowest keep-alive value first).
        for i in range(3):
            r.runtime.hold(f"f{i}")
        held = [r.start_call(spec) for spec in specs[:3]]
        gates = [r.runtime.gates[f"f{i}"] for i in range(3)]
        assert await until(lambda: sum(g.arrived for g in gates) == 3)
        assert node.resident_mb <= 512
        assert len(r.driver.destroyed) > 0
        for gate in gates:
            gate.release(0)
        assert all(res.status is Status.SUCCESS for res in await asyncio.gather(*held))
        assert violations == []


async def test_a_call_goes_elsewhere_when_busy_containers_hold_the_node(tmp_path: Path) -> None:
    async with balloon_rig(tmp_path, overcommit=2.0) as r:
        small = await r.deploy("small", memory_mb=256)
        big = await r.deploy("big", memory_mb=384)
        violations = watch_calls(r)
        assert (await r.call(small)).status is Status.SUCCESS
        await idle_and_deflate(r)
        deflated = cgroup_of(r, "small")
        assert deflated.limit_mb == DEFLATED
        gate = r.runtime.hold("big")
        held = r.start_call(big)  # fits beside the deflated one: 384 + 36 of 512 MB
        assert await until(lambda: gate.arrived == 1)
        # 384 MB run on the 512 MB node: `small` cannot be inflated to 256 MB there, so it
        # goes and its call is sent elsewhere (no other node here: retry later).
        with pytest.raises(Throttled):
            await r.call(small)
        assert deflated.limit_mb == DEFLATED  # never inflated past what the node holds
        assert r.driver.functions() == ["big"]
        assert the_node(r).resident_mb == 384
        gate.release(0)
        assert (await held).status is Status.SUCCESS
        assert violations == []


async def test_the_engine_resizes_where_the_cgroup_cannot_be_written(tmp_path: Path) -> None:
    async with balloon_rig(tmp_path, writable=False) as r:
        spec = await r.deploy("a")
        violations = watch_calls(r)
        assert (await r.call(spec)).status is Status.SUCCESS
        assert await idle_and_deflate(r) == 1
        driver = r.driver
        assert isinstance(driver, BalloonDriver)
        (cid,) = driver.live
        assert driver.engine_resizes == [(cid, DEFLATED)]
        assert (await r.call(spec)).status is Status.SUCCESS
        assert driver.engine_resizes == [(cid, DEFLATED), (cid, 128)]
        assert violations == []


async def test_without_overcommit_a_full_node_places_as_before(tmp_path: Path) -> None:
    async with balloon_rig(tmp_path, overcommit=1.0) as r:
        specs: list[FunctionSpec] = [await r.deploy(f"f{i}") for i in range(5)]
        for spec in specs[:4]:
            assert (await r.call(spec)).status is Status.SUCCESS
            await idle_and_deflate(r)
        assert the_node(r).resident_mb == 4 * DEFLATED  # deflated, but counted in full:
        with pytest.raises(Throttled):
            await r.call(specs[4])
        assert len(r.driver.destroyed) == 0  # and nothing was evicted for it
