"""The store's durable queue: enqueue, claim, retry, defer, leases and crashes.

Uses store_suite's `store` and `backend` fixtures: each test runs on SQLite and on
PostgreSQL (at NIMBUS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

from invoker.api import Status
from invoker.store.base import Store
from invoker.store.sqlite import SqliteStore
from tests.unit import store_suite
from tests.unit.store_suite import T0, Backend, finished, pending, usage_of

backend = store_suite.backend
store = store_suite.store


# the durable queue


async def test_an_enqueued_call_waits_then_is_claimed_once(store: Store) -> None:
    call = pending("q1", trigger="uploads")
    await store.enqueue(call, {"key": "cat.jpg", "size": [640, 480]}, T0 + 10)
    assert await store.get_activation("acme", "q1") == call
    assert (await store.queue_depth(), await store.next_due()) == (1, T0 + 10)
    assert await store.claim(T0 + 9.999, 10) == []  # not due yet

    (claimed,) = await store.claim(T0 + 10, 10)
    assert (claimed.activation_id, claimed.tenant, claimed.function) == ("q1", "acme", "resize")
    assert dict(claimed.args) == {"key": "cat.jpg", "size": [640, 480]}
    assert (claimed.trigger, claimed.attempts, claimed.created) == ("uploads", 0, T0 + 10)
    running = await store.get_activation("acme", "q1")
    assert running is not None and running.status is Status.RUNNING
    assert await store.claim(T0 + 39, 10) == []  # never handed out twice while leased
    assert (await store.queue_depth(), await store.next_due()) == (1, None)


async def test_claim_takes_due_calls_oldest_first_up_to_the_limit(store: Store) -> None:
    due = {"late": T0 + 3, "early": T0 + 1, "future": T0 + 100, "middle": T0 + 2}
    for aid, not_before in due.items():
        await store.enqueue(pending(aid), {}, not_before)
    assert [c.activation_id for c in await store.claim(T0 + 50, 2)] == ["early", "middle"]
    assert await store.next_due() == T0 + 3
    assert [c.activation_id for c in await store.claim(T0 + 50, 2)] == ["late"]
    assert await store.next_due() == T0 + 100
    assert await store.queue_depth() == 4


async def test_a_failed_attempt_is_retried_and_the_last_one_leaves_the_queue(
    store: Store,
) -> None:
    await store.enqueue(pending("q1"), {"n": 1}, T0)
    await store.claim(T0, 1)
    failed = finished(
        "q1", attempts=1, status=Status.PENDING, error="attempt 1 failed (timeout); retrying"
    )
    await store.finish_attempt(failed, usage_of(replace(failed, status=Status.TIMEOUT)), T0 + 30)
    assert await store.get_activation("acme", "q1") == failed
    assert (await store.queue_depth(), await store.next_due()) == (1, T0 + 30)
    assert await store.claim(T0 + 29, 1) == []

    (retry,) = await store.claim(T0 + 30, 1)
    assert (retry.attempts, dict(retry.args)) == (1, {"n": 1})
    done = finished("q1", attempts=2, start=T0 + 31)
    await store.finish_attempt(done, usage_of(done), None)
    assert await store.get_activation("acme", "q1") == done
    assert (await store.queue_depth(), await store.next_due()) == (0, None)
    assert await store.claim(T0 + 1000, 10) == []
    assert [r.activation_id for r in await store.list_usage("acme", T0, T0 + 60)] == ["q1", "q1"]


async def test_a_deferred_call_goes_back_without_counting_an_attempt(store: Store) -> None:
    await store.enqueue(pending("q1"), {}, T0)
    await store.claim(T0, 1)
    await store.defer("q1", T0 + 5)
    waiting = await store.get_activation("acme", "q1")
    assert waiting is not None and waiting.status is Status.PENDING
    assert await store.next_due() == T0 + 5
    assert await store.claim(T0 + 4, 1) == []
    (again,) = await store.claim(T0 + 5, 1)
    assert again.attempts == 0
    assert await store.list_usage("acme", 0, T0 * 2) == []


async def test_running_calls_are_requeued_after_a_crash(store: Store, backend: Backend) -> None:
    for i, aid in enumerate(("q1", "q2", "q3")):
        await store.enqueue(pending(aid), {"i": i}, T0 + i)
    claimed = await store.claim(T0 + 10, 2, owner="gw-a")
    assert [c.activation_id for c in claimed] == ["q1", "q2"]
    await backend.stop(store)  # the gateway dies with q1 and q2 running

    restarted = await backend.connect()
    assert await restarted.requeue_running("gw-b") == 0  # not another gateway's to take
    assert await restarted.requeue_running("gw-a") == 2  # the same gateway, restarted
    assert await restarted.requeue_running("gw-a") == 0
    for aid in ("q1", "q2", "q3"):
        got = await restarted.get_activation("acme", aid)
        assert got is not None and got.status is Status.PENDING
    claimed = await restarted.claim(T0 + 10, 10, owner="gw-a")
    # q1 and q2 lost an attempt with the gateway: it counts.
    assert [(c.activation_id, c.attempts, dict(c.args)) for c in claimed] == [
        ("q1", 1, {"i": 0}),
        ("q2", 1, {"i": 1}),
        ("q3", 0, {"i": 2}),
    ]


async def test_a_dead_gateways_calls_are_claimed_again_when_its_leases_run_out(
    store: Store, backend: Backend
) -> None:
    await store.enqueue(pending("q1"), {}, T0)
    await store.enqueue(pending("q2"), {}, T0)
    assert len(await store.claim(T0, 2, owner="gw-a", lease_s=30)) == 2
    peer = await backend.peer(store)
    assert await peer.claim(T0 + 29, 10, owner="gw-b") == []  # gw-a's leases hold
    await store.renew("gw-a", ["q1"], T0 + 60)  # gw-a is alive and still running q1
    await peer.renew("gw-b", ["q2"], T0 + 600)  # renewing what it does not hold changes nothing
    (taken,) = await peer.claim(T0 + 31, 10, owner="gw-b")  # q2's lease ran out
    assert taken.activation_id == "q2" and taken.attempts == 1  # gw-a's attempt was lost
    assert await peer.claim(T0 + 59, 10, owner="gw-b") == []
    (late,) = await peer.claim(T0 + 61, 10, owner="gw-b")
    assert late.activation_id == "q1"
    got = await store.get_activation("acme", "q1")
    assert got is not None and got.status is Status.RUNNING


async def test_concurrent_claimers_never_share_a_call(store: Store, backend: Backend) -> None:
    ids = [f"q{i:03d}" for i in range(120)]
    for i, aid in enumerate(ids):
        await store.enqueue(pending(aid, tenant=("acme", "globex")[i % 2]), {"i": i}, T0 + i)
    peer = await backend.peer(store)

    async def drain(handle: Store) -> list[str]:
        got: list[str] = []
        while batch := await handle.claim(T0 + 1000, 7):
            got += [c.activation_id for c in batch]
        return got

    claimed = await asyncio.gather(*(drain(store if i % 2 else peer) for i in range(6)))
    everything = [aid for batch in claimed for aid in batch]
    assert len(everything) == len(set(everything)), "a call was handed out twice"
    assert sorted(everything) == ids
    assert (await store.queue_depth(), await store.next_due()) == (120, None)


async def test_a_gateway_that_lost_its_lease_leaves_the_queue_to_the_new_holder(
    store: Store, backend: Backend
) -> None:
    await store.enqueue(pending("q1"), {}, T0)
    await store.claim(T0, 1, owner="gw-a", lease_s=30)
    peer = await backend.peer(store)
    (taken,) = await peer.claim(T0 + 31, 1, owner="gw-b")  # gw-a stalled past its lease
    done = replace(pending("q1"), status=Status.SUCCESS, attempts=1)
    await store.finish_attempt(done, None, None, owner="gw-a")  # gw-a finishes late
    await store.defer("q1", T0 + 99, owner="gw-a")
    assert await store.queue_depth() == 1  # still gw-b's to finish
    got = await store.get_activation("acme", "q1")
    assert got is not None and got.status is Status.SUCCESS  # gw-a's attempt is recorded
    assert await peer.claim(T0 + 40, 1, owner="gw-c") == []  # and gw-b's lease holds
    await peer.finish_attempt(done, None, None, owner="gw-b")
    assert await store.queue_depth() == 0
    assert taken.activation_id == "q1"


async def test_a_store_made_before_leases_gains_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the queue table as it was before leases
        db.execute(
            "CREATE TABLE queue (activation_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
            "function TEXT NOT NULL, args TEXT NOT NULL, trigger TEXT, attempts INTEGER NOT "
            "NULL DEFAULT 0, not_before REAL NOT NULL, state TEXT NOT NULL, created REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO queue VALUES ('old', 'acme', 'resize', '{}', NULL, 0, 1, 'running', 1)"
        )
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.requeue_running("gw-a") == 1  # unowned running calls come back
        (call,) = await store.claim(T0, 5, owner="gw-a")
        assert call.activation_id == "old"
    finally:
        await store.close()
