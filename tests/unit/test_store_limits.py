"""The store suite, continued: fair claims, backlogs and tenant limits, on both backends.

The `store` and `backend` fixtures (SQLite, and PostgreSQL at NIMBUS_TEST_POSTGRES_URL)
are store_suite's.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from invoker.api import Status
from invoker.store.base import Store
from invoker.tenant_limits import TenantLimits
from tests.unit import store_suite as contract
from tests.unit.store_suite import T0, Backend, pending

store = contract.store  # the fixtures, one run per backend
backend = contract.backend


async def test_a_tenant_with_a_backlog_does_not_delay_another_tenants_call(
    store: Store,
) -> None:
    for i in range(40):
        await store.enqueue(pending(f"a{i:02d}", tenant="ann"), {"i": i}, T0 + i * 0.01)
    await store.enqueue(pending("b00", tenant="bob"), {}, T0 + 5)
    # A gateway with four free slots: ann's oldest, then bob's (FIFO would give ann all four).
    first = await store.claim(T0 + 10, 4, owner="gw-a")
    assert [c.activation_id for c in first] == ["a00", "b00", "a01", "a02"]
    # Ann has three calls running, bob none: bob's next call goes first, one slot at a time.
    await store.enqueue(pending("b01", tenant="bob"), {}, T0 + 9)
    (second,) = await store.claim(T0 + 10, 1, owner="gw-a")
    assert second.activation_id == "b01"
    # With bob's queue empty, ann's calls follow, oldest first.
    assert [c.activation_id for c in await store.claim(T0 + 10, 3)] == ["a03", "a04", "a05"]


async def test_tenants_take_turns_and_each_call_is_claimed_once(
    store: Store, backend: Backend
) -> None:
    tenants = ("ann", "bob", "cy")
    for i in range(30):
        await store.enqueue(pending(f"{tenants[i % 3]}{i:02d}", tenant=tenants[i % 3]), {}, T0)
    claimed = await store.claim(T0, 6, owner="gw-a")
    assert sorted(c.tenant for c in claimed) == ["ann", "ann", "bob", "bob", "cy", "cy"]
    peer = await backend.peer(store)

    async def drain(handle: Store, owner: str) -> list[str]:
        got: list[str] = []
        while batch := await handle.claim(T0, 5, owner=owner):
            got += [c.activation_id for c in batch]
        return got

    rest = await asyncio.gather(*(drain(h, f"gw-{i}") for i, h in enumerate((store, peer) * 2)))
    everything = [c.activation_id for c in claimed] + [aid for batch in rest for aid in batch]
    assert len(everything) == len(set(everything)) == 30  # none twice, none left


async def test_a_lapsed_lease_is_claimed_again_in_its_fair_turn(store: Store) -> None:
    await store.enqueue(pending("a0", tenant="ann"), {}, T0)
    await store.enqueue(pending("a1", tenant="ann"), {}, T0 + 1)
    await store.claim(T0 + 1, 1, owner="gw-a", lease_s=30)  # a0, then gw-a dies
    await store.enqueue(pending("b0", tenant="bob"), {}, T0 + 2)
    # a0's lease ran out: it is ready again (not running), like ann's a1 and bob's b0.
    got = await store.claim(T0 + 40, 3, owner="gw-b")
    assert [(c.activation_id, c.attempts) for c in got] == [("a0", 1), ("b0", 0), ("a1", 0)]


async def test_the_backlog_bounds_a_tenants_queued_and_running_calls(store: Store) -> None:
    assert await store.enqueue(pending("a0", tenant="ann"), {}, T0, backlog=2)
    assert await store.enqueue(pending("a1", tenant="ann"), {}, T0, backlog=2)
    await store.claim(T0, 1)  # running still counts
    assert not await store.enqueue(pending("a2", tenant="ann"), {}, T0, backlog=2)
    assert await store.get_activation("ann", "a2") is None  # nothing stored
    assert await store.enqueue(pending("b0", tenant="bob"), {}, T0, backlog=2)  # per tenant
    assert (await store.queue_backlog("ann"), await store.queue_backlog("bob")) == (2, 1)
    # All or nothing: two calls do not fit where one place is left.
    await store.finish_attempt(replace(pending("a0", tenant="ann"), attempts=1), None, None)
    batch = [(pending(f"a{i}", tenant="ann"), {"i": i}) for i in (3, 4)]
    assert not await store.enqueue_all(batch, T0, backlog=2)
    assert await store.queue_backlog("ann") == 1
    assert await store.enqueue_all(batch[:1], T0, backlog=2)
    assert await store.enqueue_all(batch[1:], T0)  # no backlog given: no limit
    assert await store.queue_backlog("ann") == 3
    assert await store.queue_depth() == 4


async def test_concurrent_enqueues_never_pass_the_backlog(store: Store, backend: Backend) -> None:
    peer = await backend.peer(store)
    handles = [store, peer]
    accepted = await asyncio.gather(
        *(
            handles[i % 2].enqueue(pending(f"a{i:02d}", tenant="ann"), {}, T0, backlog=10)
            for i in range(40)
        )
    )
    assert accepted.count(True) == 10
    assert await store.queue_backlog("ann") == 10


async def test_tenant_limits_are_stored_replaced_and_survive_a_restart(
    store: Store, backend: Backend
) -> None:
    assert await store.get_tenant_limits("acme") is None  # no such tenant
    assert not await store.put_tenant_limits("acme", TenantLimits(backlog=5), T0)
    assert await store.list_tenant_limits() == {}
    await store.create_tenant("acme", "hash-acme")
    await store.create_tenant("globex", "hash-globex")
    assert await store.get_tenant_limits("acme") == TenantLimits()  # all defaults
    limits = TenantLimits(concurrency=3, rate_per_s=2.5, burst=5, backlog=10)
    assert await store.put_tenant_limits("acme", limits, T0)
    assert await store.get_tenant_limits("acme") == limits
    await store.add_dropped_events("acme", 2, T0)
    await store.add_dropped_events("globex", 1, T0)
    await store.add_dropped_events("acme", 1, T0)
    # A replace sets every field (null: back to the default) and keeps the drop count.
    assert await store.put_tenant_limits("acme", TenantLimits(backlog=7), T0 + 1)
    await backend.stop(store)

    again = await backend.connect()
    assert await again.get_tenant_limits("acme") == TenantLimits(backlog=7)
    assert await again.get_tenant_limits("globex") == TenantLimits()
    assert await again.list_tenant_limits() == {
        "acme": TenantLimits(backlog=7),
        "globex": TenantLimits(),
    }
    assert (await again.dropped_events("acme"), await again.dropped_events("globex")) == (3, 1)
    assert await again.dropped_events("initech") == 0


async def test_a_claimed_call_keeps_its_status_and_args_under_the_fair_claim(
    store: Store,
) -> None:
    await store.enqueue(pending("a0", tenant="ann", trigger="t"), {"k": [1, "é"]}, T0)
    (call,) = await store.claim(T0, 1, owner="gw-a")
    assert (call.tenant, call.function, dict(call.args), call.trigger) == (
        "ann",
        "resize",
        {"k": [1, "é"]},
        "t",
    )
    got = await store.get_activation("ann", "a0")
    assert got is not None and got.status is Status.RUNNING


async def test_a_claim_can_skip_tenants(store: Store) -> None:
    await store.enqueue(pending("a0", tenant="ann"), {}, T0)
    await store.enqueue(pending("b0", tenant="bob"), {}, T0 + 1)
    assert await store.claim(T0 + 2, 5, skip={"ann", "bob"}) == []
    (got,) = await store.claim(T0 + 2, 5, skip={"ann"})
    assert got.activation_id == "b0"
    assert [c.activation_id for c in await store.claim(T0 + 2, 5)] == ["a0"]
