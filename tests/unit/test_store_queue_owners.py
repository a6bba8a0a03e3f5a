"""Async calls owned by workers (`nimbus serve --workers N`): each call carries the worker
owning its function, and a worker claims its own calls, unowned ones, and those of an
owner silent past the grace period, never another live worker's.

The store tests use store_suite's `store` and `backend` fixtures: each runs on SQLite and
on PostgreSQL (at NIMBUS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from invoker.api import Activation, FunctionSpec
from invoker.dispatcher import Dispatcher
from invoker.ownership import Ownership, owner_of, ownership
from invoker.store.base import Store
from invoker.store.postgres import PostgresStore
from invoker.store.sql.schema import tables
from invoker.store.sqlite import SqliteStore
from invoker.store.sqlite import schema as sqlite_schema
from tests.unit import store_suite
from tests.unit.store_suite import T0, Backend, draft, pending, postgres_url
from tests.unit.test_dispatcher import Gated
from tests.unit.test_store_sql import fresh_schema

backend = store_suite.backend
store = store_suite.store

GRACE = 60.0


def ids(calls: list[Any]) -> list[str]:
    return [c.activation_id for c in calls]


async def test_a_worker_claims_its_own_calls_and_unowned_ones_never_a_live_peers(
    store: Store, backend: Backend
) -> None:
    await store.mark_worker_alive(0, T0)
    await store.mark_worker_alive(1, T0)
    calls: list[tuple[Activation, dict[str, Any]]] = [
        (pending("a0", function="alpha"), {}),
        (pending("b0", function="beta"), {}),
    ]
    assert await store.enqueue_all(calls, T0, owners={"alpha": 0, "beta": 1})
    await store.enqueue(pending("b1", function="beta"), {}, T0 + 1, owner=1)
    await store.enqueue(pending("free"), {}, T0 + 2)  # accepted by a single process
    peer = await backend.peer(store)

    assert ids(await store.claim(T0 + 5, 10, owner="w0", worker=0)) == ["a0", "free"]
    assert await store.claim(T0 + 5, 10, owner="w0", worker=0) == []  # b0, b1 are worker 1's
    assert await store.claim(T0 + 5, 10, owner="gw") == []  # and not a single process's
    assert ids(await peer.claim(T0 + 5, 10, owner="w1", worker=1)) == ["b0", "b1"]


async def test_a_silent_owners_calls_go_to_any_worker_after_the_grace(store: Store) -> None:
    await store.mark_worker_alive(1, T0)
    await store.enqueue(pending("old"), {}, T0, owner=1)
    await store.enqueue(pending("new"), {}, T0 + 50, owner=1)
    # Worker 1 was last alive at T0: its calls are its own until T0 + GRACE.
    assert await store.claim(T0 + GRACE - 1, 10, owner="w0", worker=0, grace_s=GRACE) == []
    taken = await store.claim(T0 + GRACE + 1, 10, owner="w0", lease_s=999, worker=0, grace_s=GRACE)
    assert ids(taken) == ["old"]
    # "new" was accepted within the grace: it waits for its owner that long.
    assert await store.claim(T0 + 100, 10, owner="w0", worker=0, grace_s=GRACE) == []
    later = await store.claim(T0 + 50 + GRACE + 1, 10, owner="w0", worker=0, grace_s=GRACE)
    assert ids(later) == ["new"]


async def test_a_worker_starting_keeps_the_calls_accepted_before_it_said_it_was_alive(
    store: Store,
) -> None:
    await store.enqueue(pending("early"), {}, T0, owner=1)  # worker 1 has never been seen
    assert await store.claim(T0 + 10, 10, owner="w0", worker=0, grace_s=GRACE) == []
    await store.mark_worker_alive(1, T0 + 10)
    assert await store.claim(T0 + GRACE + 5, 10, owner="w0", worker=0, grace_s=GRACE) == []
    (mine,) = await store.claim(T0 + GRACE + 5, 10, owner="w1", worker=1, grace_s=GRACE)
    assert mine.activation_id == "early"


async def test_a_lapsed_lease_of_a_live_workers_call_goes_back_to_that_worker(
    store: Store,
) -> None:
    await store.enqueue(pending("q1"), {}, T0, owner=1)
    await store.claim(T0, 1, owner="gw-w1", lease_s=30, worker=1)  # then worker 1 is killed
    await store.mark_worker_alive(1, T0 + 31)  # and started again under the same index
    assert await store.claim(T0 + 35, 10, owner="gw-w0", worker=0) == []
    (again,) = await store.claim(T0 + 35, 10, owner="gw-w1", worker=1)
    assert (again.activation_id, again.attempts) == ("q1", 1)  # the lost attempt counts


async def test_a_claim_never_hands_one_call_to_two_workers(store: Store, backend: Backend) -> None:
    for i in range(60):
        await store.enqueue(pending(f"q{i:02d}"), {}, T0 + i, owner=i % 2)
    peer = await backend.peer(store)

    async def drain(handle: Store, worker: int) -> list[str]:
        got: list[str] = []
        while batch := await handle.claim(T0 + 10**4, 7, owner=f"w{worker}", worker=worker):
            got += ids(batch)
        return got

    # Every owner is long silent: both may take any call, each exactly once.
    claimed = await asyncio.gather(*(drain(store if i % 2 else peer, i % 2) for i in range(4)))
    everything = [aid for batch in claimed for aid in batch]
    assert sorted(everything) == [f"q{i:02d}" for i in range(60)]


async def test_a_worker_waits_only_for_the_calls_it_may_take(store: Store) -> None:
    await store.enqueue(pending("theirs"), {}, T0, owner=1)
    await store.enqueue(pending("mine"), {}, T0 + 5, owner=0)
    await store.enqueue(pending("free"), {}, T0 + 9)
    assert await store.next_due(0) == T0 + 5
    assert await store.next_due(1) == T0
    assert await store.next_due() == T0 + 9


def old_queue_sql(types: Any) -> str:
    """The tables as a store made before owned calls had them."""
    return (
        tables(types)
        .replace(",\n    owner_worker INTEGER", "")
        .split("CREATE TABLE IF NOT EXISTS queue_workers")[0]
    )


OLD_CALL = (
    "INSERT INTO queue (activation_id, tenant, function, args, attempts, not_before, state, "
    "created) VALUES ('old', 'acme', 'resize', '{}', 0, 1, 'queued', 1)"
)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_store_made_before_owned_calls_gains_them(kind: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        old: Store
        if kind == "sqlite":
            with sqlite3.connect(tmp_path / "old.db") as db:
                db.executescript(old_queue_sql(sqlite_schema.TYPES))
                db.execute(OLD_CALL)
            old = SqliteStore(tmp_path / "old.db")
        else:
            from invoker.store.postgres import schema as postgres_schema

            schema = await stack.enter_async_context(fresh_schema())
            con = await asyncpg.connect(postgres_url())
            try:
                await con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                await con.execute(f'SET search_path TO "{schema}"')
                await con.execute(old_queue_sql(postgres_schema.TYPES))
                await con.execute(OLD_CALL)
            finally:
                await con.close()
            old = PostgresStore(postgres_url(), schema=schema)
        await old.open()
        stack.push_async_callback(old.close)
        await old.mark_worker_alive(0, T0)
        await old.enqueue(pending("new"), {}, T0, owner=0)
        assert ids(await old.claim(T0, 5, owner="w1", worker=1)) == ["old"]  # no owner
        assert ids(await old.claim(T0, 5, owner="w0", worker=0)) == ["new"]


# the dispatcher


class Recording(Gated):
    """An invoker that runs every call at once and records which it ran."""

    def __init__(self) -> None:
        super().__init__(blocked="")
        self.ran: list[str] = []

    async def invoke(self, request: Any, recorder: Any = None) -> Any:
        self.ran.append(request.activation_id)
        return await super().invoke(request, recorder)


def test_a_worker_knows_its_ownership_only_among_several() -> None:
    assert ownership("", 4) is None and ownership("0", 1) is None
    assert ownership("2", 4) == Ownership(2, 4)
    assert Ownership(2, 4).owner("fn:3") == Ownership(2, 4).owner("fn:prod") == owner_of("fn", 4)


async def test_async_calls_run_on_the_worker_owning_their_function_once_each(
    tmp_path: Path,
) -> None:
    shared = SqliteStore(tmp_path / "db.sqlite")  # what both workers' stores reach
    await shared.open()
    invokers = [Recording(), Recording()]
    workers = [
        Dispatcher(
            shared,
            invokers[i],  # type: ignore[arg-type]
            owner=f"w{i}",
            ownership=Ownership(i, 2),
            poll_s=0.05,
        )
        for i in range(2)
    ]
    async with AsyncExitStack() as stack:
        stack.push_async_callback(shared.close)
        for dispatcher in workers:
            await dispatcher.start()
            stack.push_async_callback(dispatcher.close)
        names = [f"fn{i}" for i in range(6)]
        specs = [(await shared.put_function(draft(name), time.time()))[0].spec for name in names]
        assert {owner_of(name, 2) for name in names} == {0, 1}
        accepted: dict[str, str] = {}  # activation id -> function
        for k in range(24):  # each worker accepts calls of every function
            spec = specs[k % len(specs)]
            accepted[await workers[k % 2].submit(spec, {"k": k})] = spec.name
        calls: list[tuple[FunctionSpec, dict[str, Any]]] = [(s, {}) for s in specs[:3]]  # a fire
        for aid, (spec, _) in zip(
            await workers[1].submit_many(calls, trigger="t"), calls, strict=True
        ):
            accepted[aid] = spec.name
        for _ in range(200):
            if await shared.queue_depth() == 0:
                break
            await asyncio.sleep(0.02)
        ran = {i: invoker.ran for i, invoker in enumerate(invokers)}
    assert sorted(ran[0] + ran[1]) == sorted(accepted)  # every call, once
    for worker, ran_here in ran.items():
        assert {owner_of(accepted[aid], 2) for aid in ran_here} <= {worker}
