"""The store's billing records: usage per finished attempt, and node leases.

Uses store_suite's `store` and `backend` fixtures: each test runs on SQLite and on
PostgreSQL (at NIMBUS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from invoker.api import Status
from invoker.metering import meter_activation
from invoker.store.base import NodeLease, Store
from tests.unit import store_suite
from tests.unit.store_suite import T0, finished, usage_of

store = store_suite.store


# usage


async def test_each_finished_attempt_bills_one_exact_record(store: Store) -> None:
    first = finished("a1", attempts=1, status=Status.TIMEOUT, duration_ms=30_000.0)
    await store.save_activation(first, usage_of(first))
    await store.save_activation(first, usage_of(first))  # the same attempt saved twice
    second = finished("a1", attempts=2, start=T0 + 60, duration_ms=1.0625, memory_mb=1000)
    await store.save_activation(second, usage_of(second))
    records = await store.list_usage("acme", T0, T0 + 3600)
    assert records == [meter_activation(first), meter_activation(second)]
    # GB-seconds come back as the exact Decimals metering computed.
    assert [r.gb_seconds for r in records] == [Decimal("11.25"), Decimal("0.001953125")]
    assert all(isinstance(r.gb_seconds, Decimal) for r in records)
    # A sync call (attempts 0) bills as attempt 1.
    sync = finished("a2", start=T0 + 120)
    await store.save_activation(sync, usage_of(sync))
    await store.save_activation(replace(sync, attempts=1), usage_of(sync))
    assert [r.activation_id for r in await store.list_usage("acme", T0, T0 + 3600)] == [
        "a1",
        "a1",
        "a2",
    ]


async def test_usage_is_listed_by_start_window_and_tenant(store: Store) -> None:
    starts = {"a0": T0 - 0.001, "a1": T0, "a2": T0 + 30, "a3": T0 + 60}
    for aid, start in sorted(starts.items(), key=lambda kv: -kv[1]):  # saved out of order
        done = finished(aid, start=start)
        await store.save_activation(done, usage_of(done))
    other = finished("g1", tenant="globex", start=T0 + 10)
    await store.save_activation(other, usage_of(other))
    await store.save_activation(finished("no-usage", start=T0 + 5))

    in_window = await store.list_usage("acme", T0, T0 + 60)  # from inclusive, to exclusive
    assert [r.activation_id for r in in_window] == ["a1", "a2"]
    assert [r.activation_id for r in await store.list_usage(None, T0, T0 + 60)] == [
        "a1",
        "g1",
        "a2",
    ]
    assert [r.activation_id for r in await store.list_usage("globex", 0, T0 * 2)] == ["g1"]
    assert await store.list_usage("initech", 0, T0 * 2) == []


# nodes


async def test_a_node_lease_only_ever_records_its_release(store: Store) -> None:
    lease = NodeLease("node-a", "c5.large", 2.0, 4096, "0.0850", up_at=T0)
    await store.save_node_lease(lease)
    assert await store.node_leases(T0, T0 + 1) == [lease]
    # Saved again at release: only down_at changes, whatever else the caller passes.
    await store.save_node_lease(replace(lease, flavor="c5.xlarge", vcpu=4.0, down_at=T0 + 3600))
    assert await store.node_leases(T0, T0 + 1) == [replace(lease, down_at=T0 + 3600)]


async def test_node_leases_overlapping_a_window(store: Store) -> None:
    leases = [
        NodeLease("early", "small", 1.0, 2048, "0.0208", up_at=T0, down_at=T0 + 100),
        NodeLease("open", "large", 4.0, 16384, "0.1664", up_at=T0 + 50),
        NodeLease("late", "small", 1.0, 2048, "0.0208", up_at=T0 + 200, down_at=T0 + 300),
    ]
    for lease in reversed(leases):
        await store.save_node_lease(lease)

    def ids(found: list[NodeLease]) -> list[str]:
        return [lease.id for lease in found]

    assert await store.node_leases(T0, T0 + 1000) == leases  # ordered by up_at, exact prices
    assert ids(await store.node_leases(T0 + 100, T0 + 200)) == ["open"]  # [from, to)
    assert ids(await store.node_leases(T0 - 10, T0)) == []
    assert ids(await store.node_leases(T0 + 99, T0 + 201)) == ["early", "open", "late"]
    assert ids(await store.node_leases(T0 + 10_000, T0 + 20_000)) == ["open"]
