"""The pool's pure decisions, driven directly with time passed in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.containers.pool import (
    Cold,
    Demand,
    Pool,
    PoolLimits,
    Reject,
    Specialise,
    Wait,
    Warm,
)
from invoker.containers.slots import State

A = ("t1", "f", 1)
B = ("t1", "g", 1)


def demand(key=A, memory=128, concurrency=1, stem_ok=True) -> Demand:
    return Demand(
        key=key, runtime="python:3.11", memory_mb=memory, concurrency=concurrency, stem_ok=stem_ok
    )


def start(pool: Pool, slot: str, d: Demand, now: float = 0.0) -> None:
    assert isinstance(pool.decide(d, now), Cold)
    pool.starting(slot, d, d.runtime, d.memory_mb, now)
    pool.initialized(slot, 0.3)


def test_cold_then_warm_reuse_after_release() -> None:
    pool = Pool(PoolLimits())
    start(pool, "c1", demand())
    assert pool.slots["c1"].state is State.BUSY
    pool.released("c1", "t1", now=1.0, keep_alive_s=60, duration_s=0.01)
    assert pool.slots["c1"].state is State.IDLE
    assert pool.decide(demand(), 2.0) == Warm("c1")


def test_busy_container_with_concurrency_takes_more_calls() -> None:
    pool = Pool(PoolLimits())
    start(pool, "c1", demand(concurrency=3))
    assert pool.decide(demand(concurrency=3), 0.1) == Warm("c1")
    assert pool.decide(demand(concurrency=3), 0.1) == Warm("c1")
    assert isinstance(pool.decide(demand(concurrency=3), 0.1), Cold)


def test_stem_cell_is_specialised_only_when_it_fits() -> None:
    pool = Pool(PoolLimits())
    pool.starting("s1", None, "python:3.11", 128, 0.0)
    assert isinstance(pool.decide(demand(), 0.0), Cold), "a stem still starting is not usable"
    pool.prewarmed("s1")
    assert isinstance(pool.decide(demand(memory=256), 0.0), Cold)
    assert isinstance(pool.decide(demand(stem_ok=False), 0.0), Cold)
    assert pool.decide(demand(), 0.0) == Specialise("s1")
    assert pool.slots["s1"].key == A and pool.slots["s1"].state is State.INITIALIZING


def test_initializing_container_is_shared_by_concurrent_callers() -> None:
    pool = Pool(PoolLimits())
    d = demand(concurrency=2)
    assert isinstance(pool.decide(d, 0.0), Cold)
    pool.starting("c1", d, d.runtime, d.memory_mb, 0.0)
    assert pool.decide(d, 0.0) == Warm("c1")  # coalesced onto the starting container
    pool.initialized("c1")
    assert pool.slots["c1"].in_flight == 2


def test_wait_when_a_busy_container_frees_up_sooner_than_a_cold_start() -> None:
    pool = Pool(PoolLimits())
    start(pool, "c1", demand())
    pool.released("c1", "t1", 1.0, 60, duration_s=0.02)  # learn: calls take 20 ms
    assert pool.decide(demand(), 1.1) == Warm("c1")
    decision = pool.decide(demand(), 1.1)
    assert isinstance(decision, Wait) and decision.seconds < 0.3


def test_slow_function_gets_a_cold_start_instead_of_waiting() -> None:
    pool = Pool(PoolLimits())
    start(pool, "c1", demand())
    pool.released("c1", "t1", 1.0, 60, duration_s=5.0)
    assert pool.decide(demand(), 1.1) == Warm("c1")
    assert isinstance(pool.decide(demand(), 1.1), Cold)


def test_eviction_takes_oldest_idle_and_never_busy() -> None:
    pool = Pool(PoolLimits(memory_mb=384))
    start(pool, "old", demand(key=A), now=0.0)
    pool.released("old", "t1", 1.0, 600, 0.01)
    start(pool, "busy", demand(key=B), now=2.0)
    start(pool, "new", demand(key=("t1", "h", 1)), now=3.0)
    pool.released("new", "t1", 4.0, 600, 0.01)
    decision = pool.decide(demand(key=("t1", "x", 1)), 5.0)
    assert decision == Cold(evict=("old",))


def test_reject_when_memory_is_held_by_busy_containers() -> None:
    pool = Pool(PoolLimits(memory_mb=256))
    start(pool, "a", demand(key=A))
    start(pool, "b", demand(key=B))
    assert isinstance(pool.decide(demand(key=("t1", "c", 1)), 1.0), Reject)


def test_tenant_quota() -> None:
    pool = Pool(PoolLimits(max_in_flight_per_tenant=1))
    start(pool, "a", demand())
    decision = pool.decide(demand(key=B), 0.5)
    assert isinstance(decision, Reject) and decision.retry_after_s > 0
    pool.released("a", "t1", 1.0, 60, 0.1)
    assert not isinstance(pool.decide(demand(key=B), 1.0), Reject)


def test_expiry_and_retirement() -> None:
    pool = Pool(PoolLimits())
    start(pool, "a", demand())
    assert pool.expired(1000.0) == []  # busy never expires
    pool.released("a", "t1", 1.0, keep_alive_s=10, duration_s=0.1)
    assert pool.expired(10.9) == [] and pool.expired(11.0) == ["a"]
    start(pool, "b", demand(key=B))
    assert pool.retire("t1", "g") == []  # busy: drained when its call ends
    assert pool.released("b", "t1", 2.0, 600, 0.1) is True
    assert isinstance(pool.decide(demand(key=B), 3.0), Cold), "a retired container takes no calls"


calls = st.lists(
    st.tuples(
        st.sampled_from(["decide", "release", "expire"]), st.integers(0, 3), st.integers(1, 3)
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(calls)
def test_invariants_hold_under_any_sequence(steps) -> None:
    limits = PoolLimits(memory_mb=1024, max_per_function=3, max_in_flight_per_tenant=50)
    pool = Pool(limits)
    now = 0.0
    running: list[tuple[str, str]] = []  # (slot, tenant) of calls in flight
    counter = 0
    for op, fn, conc in steps:
        now += 0.5
        key = ("t", f"f{fn}", 1)
        d = demand(key=key, concurrency=conc)
        if op == "decide":
            busy_before = {s.id for s in pool.slots.values() if s.state is State.BUSY}
            decision = pool.decide(d, now)
            if isinstance(decision, Cold):
                assert not set(decision.evict) & busy_before, "never evicts a busy container"
                for slot in decision.evict:
                    pool.removing([slot])
                    pool.removed(slot)
                counter += 1
                slot = f"c{counter}"
                pool.starting(slot, d, d.runtime, d.memory_mb, now)
                pool.initialized(slot)
                running.append((slot, "t"))
            elif isinstance(decision, Warm | Specialise):
                if pool.slots[decision.slot].state is State.INITIALIZING:
                    pool.initialized(decision.slot)
                running.append((decision.slot, "t"))
        elif op == "release" and running:
            slot, tenant = running.pop(0)
            pool.released(slot, tenant, now, keep_alive_s=2.0, duration_s=0.1)
        else:
            for slot in pool.expired(now):
                assert pool.slots[slot].in_flight == 0
                pool.removing([slot])
                pool.removed(slot)
        assert pool.slots.memory_used() <= limits.memory_mb
        for f in range(4):
            assert len(pool.slots.of(("t", f"f{f}", 1))) <= limits.max_per_function
        for s in pool.slots.values():
            assert 0 <= s.in_flight <= s.concurrency
        assert pool.tenant_in_flight("t") == len(running)
