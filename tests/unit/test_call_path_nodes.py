"""The invoker's call path on a node pool (simulated nodes, fake driver): every container is
booked on the node it runs on for exactly as long as it lives. See test_call_path.py for the
rig; tests/integration/test_nodes.py proves the same on real Docker and cgroups."""

from __future__ import annotations

from pathlib import Path

from invoker.api import Status
from invoker.containers.pool import PoolLimits
from invoker.drivers.base import DriverError
from invoker.nodes.model import Flavor
from tests.unit.call_path_fakes import Rig, rig, until

TINY = Flavor("tiny", 1.0, 512, 0.01)


def booked(r: Rig) -> dict[str, list[str]]:
    """Each node's books: the containers allocated on it."""
    assert r.nodes is not None
    return {n.id: sorted(n.allocations) for n in r.nodes.nodes.values()}


def running(r: Rig) -> dict[str, str]:
    """Each live container's function (or "stem") -> the node it was started on."""
    return {
        spec.labels.get("io.nimbus.function", "stem"): str(spec.node)
        for spec in r.driver.live.values()
    }


def names(r: Rig) -> dict[str, str]:
    """Each live container's function (or "stem") -> its container name."""
    return {
        spec.labels.get("io.nimbus.function", "stem"): spec.name for spec in r.driver.live.values()
    }


async def test_containers_are_booked_on_their_node_until_they_go(tmp_path: Path) -> None:
    async with rig(tmp_path, keep_alive_s=60.0, node_flavors=(TINY,)) as r:
        a = await r.deploy("a", memory_mb=256)
        b = await r.deploy("b", memory_mb=384)
        first = await r.call(a)
        second = await r.call(b)  # 256 + 384 MB do not fit one node: a second one comes up

        assert first.status is second.status is Status.SUCCESS
        assert first.node is not None and second.node is not None
        assert first.node != second.node
        assert (await r.stored(second)).node == second.node
        assert running(r) == {"a": first.node, "b": second.node}
        assert booked(r) == {first.node: [names(r)["a"]], second.node: [names(r)["b"]]}

        warm = await r.call(a)
        assert warm.cold_start is False and warm.node == first.node

        r.clock.advance(61)
        assert await r.invoker.reap() == 2
        assert booked(r) == {first.node: [], second.node: []}


async def test_a_stem_cell_keeps_its_node_when_specialised(tmp_path: Path) -> None:
    async with rig(tmp_path, stem_cells=(("python:3.11", 128, 1),), node_flavors=(TINY,)) as r:
        await r.invoker.refill_stems()
        [(node, [stem])] = booked(r).items()
        spec = await r.deploy("a")
        result = await r.call(spec)

        assert result.status is Status.SUCCESS and result.node == node
        assert names(r) == {"stem": stem}  # the same container, labelled as it started
        assert booked(r) == {node: [stem]}


async def test_a_refused_start_gives_its_share_of_the_node_back(tmp_path: Path) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        spec = await r.deploy("a", memory_mb=512)
        r.driver.refuse = DriverError("the engine refused")
        failed = await r.call(spec)
        assert failed.status is Status.PLATFORM_ERROR
        assert all(containers == [] for containers in booked(r).values())

        r.driver.refuse = None
        again = await r.call(spec)  # the whole node is free again for 512 MB
        assert again.status is Status.SUCCESS
        assert booked(r) == {again.node: [names(r)["a"]]}


async def test_an_evicted_container_leaves_its_node(tmp_path: Path) -> None:
    async with rig(tmp_path, limits=PoolLimits(memory_mb=256), node_flavors=(TINY,)) as r:
        a, b = await r.deploy("a"), await r.deploy("b", memory_mb=256)
        await r.call(a)
        r.clock.advance(1)
        result = await r.call(b)  # the pool is full: a goes

        assert result.status is Status.SUCCESS
        assert await until(lambda: r.driver.functions() == ["b"]), r.driver.functions()
        assert booked(r) == {result.node: [names(r)["b"]]}


async def test_a_drained_node_loses_its_idle_containers_at_once_busy_ones_when_done(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        a = await r.deploy("a", memory_mb=384)
        b = await r.deploy("b", memory_mb=384)
        first = await r.call(a)  # idle from now on
        gate = r.runtime.hold("b")
        busy = r.start_call(b)  # on a second node, held inside its container
        assert await until(lambda: gate.arrived == 1)
        assert r.nodes is not None and len(r.nodes.nodes) == 2
        [second] = set(booked(r)) - {first.node}

        await r.invoker.drain_node(str(first.node))  # idle: removed, the node released
        assert running(r) == {"b": second} and list(booked(r)) == [second]

        await r.invoker.drain_node(second)  # busy: it finishes its call first
        assert running(r) == {"b": second}
        gate.release(0)
        assert (await busy).status is Status.SUCCESS
        assert await until(lambda: r.driver.live == {})
        assert await r.invoker.consolidate() == [second]
        assert booked(r) == {}
