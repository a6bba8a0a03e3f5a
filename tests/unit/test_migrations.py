"""Live migration's sequencing with a fake driver on simulated nodes: the replacement is up
before the source stops taking calls, calls in flight finish on the source, nothing fails.
The real-Docker version under load is tests/integration/test_migration.py."""

from __future__ import annotations

from pathlib import Path

from invoker.api import Status
from invoker.drivers.base import ContainerHandle, ContainerStats, DriverError
from invoker.nodes.heat import HotSpots
from invoker.nodes.hotspot import HotSpotConfig
from invoker.nodes.migration import MigrationState
from invoker.providers.base import NodeUsage
from tests.unit.call_path_fakes import Rig, rig, until
from tests.unit.test_call_path_nodes import TINY


def node_of(r: Rig, function: str) -> list[str]:
    """The nodes the function's live containers run on."""
    return sorted(
        str(spec.node)
        for spec in r.driver.live.values()
        if spec.labels.get("io.nimbus.function") == function
    )


async def two_nodes(r: Rig) -> tuple[str, str]:
    assert r.nodes is not None
    await r.nodes.add("tiny")
    first, second = sorted(r.nodes.nodes)
    return first, second


async def test_an_idle_container_moves_and_its_next_call_is_warm_there(tmp_path: Path) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        first, second = await two_nodes(r)
        spec = await r.deploy("a")
        assert (await r.call(spec)).node == first
        (slot,) = r.invoker.containers()
        migrations = r.invoker.migrations
        assert migrations is not None

        record = await migrations.migrate(slot.id, None, "admin")

        assert record.state is MigrationState.DONE, record
        assert (record.source, record.target) == (first, second)
        assert record.cost.downtime_s == 0.0 and record.cost.init_s > 0
        assert record.cost.bytes_moved == len(b"def handler(event):\n    return event\n")
        assert node_of(r, "a") == [second]  # the source is gone
        warm = await r.call(spec)
        assert warm.status is Status.SUCCESS and not warm.cold_start and warm.node == second
        assert r.ledger.violations == []


async def test_calls_in_flight_finish_on_the_source_new_ones_go_to_the_target(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        first, second = await two_nodes(r)
        spec = await r.deploy("a")
        assert (await r.call(spec)).node == first
        (slot,) = r.invoker.containers()
        gate = r.runtime.hold("a")
        held = r.start_call(spec)  # inside the source until released
        assert await until(lambda: gate.arrived == 1)
        migrations = r.invoker.migrations
        assert migrations is not None

        record = migrations.start(slot.id, second, "admin")
        assert await until(lambda: len(r.driver.live) == 2)  # the replacement, beside it
        assert await until(lambda: r.invoker.slots[slot.id].retired)  # routed
        r.runtime.gates.pop("a")
        fresh = await r.call(spec)  # a new call: the replacement, warm
        assert fresh.node == second and not fresh.cold_start
        assert node_of(r, "a") == [first, second]  # the source still finishes its call
        gate.release(0)
        first_call = await held
        assert first_call.status is Status.SUCCESS and first_call.node == first
        assert await until(lambda: node_of(r, "a") == [second])
        done = {m.id: m for m in migrations.records()}[record.id]
        assert done.state is MigrationState.DONE and done.cost.downtime_s == 0.0


async def test_a_replacement_that_cannot_start_leaves_the_source_serving(tmp_path: Path) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        first, second = await two_nodes(r)
        spec = await r.deploy("a")
        await r.call(spec)
        (slot,) = r.invoker.containers()
        r.driver.refuse = DriverError("the engine said no")
        migrations = r.invoker.migrations
        assert migrations is not None

        record = await migrations.migrate(slot.id, second, "admin")

        assert record.state is MigrationState.FAILED and "said no" in str(record.error)
        r.driver.refuse = None
        again = await r.call(spec)
        assert again.node == first and not again.cold_start
        assert r.nodes is not None and r.nodes.nodes[second].allocations == {}


async def test_draining_a_node_migrates_its_warm_containers_and_releases_it(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        first, second = await two_nodes(r)
        a, b = await r.deploy("a"), await r.deploy("b")
        await r.call(a)
        await r.call(b)
        assert node_of(r, "a") == node_of(r, "b") == [first]

        started = await r.invoker.drain_node(first)

        assert {m.target for m in started} == {second} and len(started) == 2
        assert await until(lambda: node_of(r, "a") == node_of(r, "b") == [second])
        assert await r.invoker.consolidate() == [first]
        for spec in (a, b):
            result = await r.call(spec)
            assert result.node == second and not result.cold_start


async def test_a_node_that_stays_hot_sheds_its_busiest_container(tmp_path: Path) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        first, second = await two_nodes(r)
        hot, calm = await r.deploy("hot"), await r.deploy("calm")
        await r.call(hot)
        await r.call(calm)
        assert node_of(r, "hot") == node_of(r, "calm") == [first]
        assert r.nodes is not None
        config = HotSpotConfig(hot_above=0.8, cool_below=0.5, window_s=2.0, cool_window_s=1.0)
        spots = r.invoker.hot_spots = HotSpots(r.nodes, config, clock=r.clock.now)
        cpu = {first: 0.0, second: 0.0}
        spots.read = lambda node: NodeUsage(cpu[node], 100.0)
        busy = {"c": 0.0}
        hot_id = r.invoker.containers(name="hot")[0].handle
        assert hot_id is not None

        async def stats(handle: ContainerHandle) -> ContainerStats:
            spent = busy["c"] if handle.id == hot_id.id else 0.0
            return ContainerStats(peak_memory_mb=None, cpu_seconds=spent)

        r.driver.stats = stats  # type: ignore[method-assign]
        moved = []
        for _ in range(8):  # a second per round: node 1 busy at 0.95 vCPU, 0.4 of it "hot"'s
            r.clock.advance(1.0)
            here = node_of(r, "hot") == [first]
            cpu[first] += 0.95 if here else 0.55  # still above cool_below once it left
            busy["c"] += 0.4
            moved += await r.invoker.mitigate_hot_spots()
        assert [m.function for m in moved] == ["t/hot"], moved  # once: hysteresis holds
        assert await until(lambda: node_of(r, "hot") == [second])
        assert node_of(r, "calm") == [first]
        result = await r.call(hot)
        assert result.status is Status.SUCCESS and not result.cold_start
