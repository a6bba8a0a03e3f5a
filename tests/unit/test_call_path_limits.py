"""The invoker's call path at its limits, with a fake driver: eviction, throttling, no
capacity, and freezing idle containers. See test_call_path.py for the rig."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from invoker import call_path
from invoker.api import InvokeRequest, Status, Throttled
from invoker.containers.pool import PoolLimits
from invoker.drivers.base import DriverError
from invoker.nodes.model import NoCapacity
from invoker.replies import PLATFORM_START_FAILED
from tests.unit.call_path_fakes import rig, until


async def test_a_full_pool_evicts_the_oldest_idle_container(tmp_path: Path) -> None:
    async with rig(tmp_path, limits=PoolLimits(memory_mb=256)) as r:
        a, b, c = [await r.deploy(name) for name in "abc"]
        await r.call(a)
        r.clock.advance(1)
        await r.call(b)
        r.clock.advance(1)
        result = await r.call(c)

        assert result.status is Status.SUCCESS and result.cold_start is True
        assert await until(lambda: r.driver.functions() == ["b", "c"]), r.driver.functions()


async def test_eviction_never_takes_a_busy_container(tmp_path: Path) -> None:
    async with rig(tmp_path, limits=PoolLimits(memory_mb=256)) as r:
        a, b, c = [await r.deploy(name) for name in "abc"]
        gate = r.runtime.hold("a")
        busy = r.start_call(a)  # the oldest container, and busy throughout
        assert await until(lambda: gate.arrived == 1)
        r.clock.advance(1)
        await r.call(b)  # idle from now on, newer than a
        r.clock.advance(1)
        result = await r.call(c)

        assert result.status is Status.SUCCESS
        assert await until(lambda: r.driver.functions() == ["a", "c"]), r.driver.functions()
        gate.release(0)
        assert (await busy).status is Status.SUCCESS


async def test_a_pool_full_of_busy_containers_throttles(tmp_path: Path) -> None:
    async with rig(tmp_path, limits=PoolLimits(memory_mb=256)) as r:
        a, b, c = [await r.deploy(name) for name in "abc"]
        gates = [r.runtime.hold("a"), r.runtime.hold("b")]
        calls = [r.start_call(a), r.start_call(b)]
        assert await until(lambda: all(g.arrived == 1 for g in gates))

        with pytest.raises(Throttled) as refused:
            await r.call(c)
        assert refused.value.retry_after_s == 1.0
        assert "no memory" in refused.value.reason
        assert r.driver.functions() == ["a", "b"]
        for gate in gates:
            gate.release(0)
        assert [(await call).status for call in calls] == [Status.SUCCESS] * 2


async def test_a_tenant_at_its_in_flight_quota_is_throttled_others_are_not(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, limits=PoolLimits(max_in_flight_per_tenant=1)) as r:
        a, b = await r.deploy("a"), await r.deploy("b")
        theirs = await r.deploy("o", tenant="u")
        gate = r.runtime.hold("a")
        first = r.start_call(a)
        assert await until(lambda: gate.arrived == 1)

        refused_id = uuid.uuid4().hex
        with pytest.raises(Throttled) as refused:
            await r.invoker.invoke(InvokeRequest(refused_id, b, {}))
        assert refused.value.retry_after_s == 1.0
        assert "quota" in refused.value.reason
        assert (await r.call(theirs)).status is Status.SUCCESS  # another tenant goes on

        gate.release(0)
        assert (await first).status is Status.SUCCESS
        assert (await r.call(b)).status is Status.SUCCESS  # the quota is given back
        assert await r.store.get_activation("t", refused_id) is None  # never accepted
        assert r.driver.functions() == ["a", "b", "o"]


async def test_no_capacity_throttles_and_leaves_nothing_behind(tmp_path: Path) -> None:
    async with rig(tmp_path, limits=PoolLimits(memory_mb=128)) as r:
        spec = await r.deploy("hello")
        r.driver.refuse = NoCapacity("no node has room for 128 MB")
        with pytest.raises(Throttled) as refused:
            await r.call(spec)

        assert refused.value.retry_after_s == 1.0
        assert refused.value.reason.startswith("no capacity")
        assert r.driver.live == {}
        r.driver.refuse = None  # capacity again: the refused start held no memory
        result = await r.call(spec)
        assert result.status is Status.SUCCESS and result.cold_start is True


async def test_a_container_that_cannot_start_is_a_platform_error(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        spec = await r.deploy("hello")
        r.driver.refuse = DriverError("engine at /var/run/docker.sock: 500 Server Error")
        result = await r.call(spec)

        assert result.status is Status.PLATFORM_ERROR
        assert result.error == PLATFORM_START_FAILED  # no engine detail for the tenant
        assert r.driver.live == {}
        assert (await r.stored(result)).status is Status.PLATFORM_ERROR


async def test_a_container_is_thawed_for_calls_and_frozen_when_the_last_ends(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        spec = await r.deploy("pair", concurrency=2)
        gate = r.runtime.hold("pair")
        first = r.start_call(spec)
        assert await until(lambda: gate.arrived == 1)
        second = r.start_call(spec)  # shares the container: it takes two calls
        assert await until(lambda: gate.arrived == 2)
        [cid] = r.driver.live
        address = r.driver.addresses[cid]

        gate.release(0)
        assert (await first).status is Status.SUCCESS
        assert address not in r.ledger.frozen  # the second call is still inside
        gate.release(1)
        assert (await second).status is Status.SUCCESS
        assert await until(lambda: address in r.ledger.frozen)  # nobody inside: frozen
        del r.runtime.gates["pair"]
        assert (await r.call(spec)).cold_start is False
        assert await until(lambda: address in r.ledger.frozen)

        assert r.ledger.of(address, {"freeze", "thaw", "enter", "exit"}) == [
            "freeze",  # loaded, nobody inside yet
            "thaw",
            "enter",
            "enter",
            "exit",
            "exit",
            "freeze",
            "thaw",
            "enter",
            "exit",
            "freeze",
        ]
        assert r.ledger.violations == []


async def test_calls_in_a_row_skip_the_freezer_until_the_container_is_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grace long enough that a slow machine still runs the calls within it.
    monkeypatch.setattr(call_path, "FREEZE_GRACE_S", 0.3)
    async with rig(tmp_path) as r:
        spec = await r.deploy("busy")
        assert (await r.call(spec)).cold_start is True
        [cid] = r.driver.live
        address = r.driver.addresses[cid]
        for _ in range(5):
            assert (await r.call(spec)).cold_start is False
        assert address not in r.ledger.frozen  # idle for less than the grace
        assert await until(lambda: address in r.ledger.frozen)
        assert r.ledger.of(address, {"freeze", "thaw", "enter"}) == [
            "freeze",  # loaded
            "thaw",
            *["enter"] * 6,
            "freeze",  # once, after the last call and the grace
        ]
        assert r.ledger.violations == []
