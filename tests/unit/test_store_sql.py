"""The store's SQL written once: how it runs on each dialect, and what both must agree on.

Pure tests of the steps and the dialects, then contracts on SQLite and PostgreSQL alike
(the `store` and `backend` fixtures are store_suite's; PostgreSQL at
NIMBUS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from invoker.store.base import Store
from invoker.store.postgres import PostgresStore
from invoker.store.postgres import schema as postgres_schema
from invoker.store.postgres.dialect import PostgresDialect
from invoker.store.sql.queue import defer_steps
from invoker.store.sql.rows import from_row
from invoker.store.sql.schema import tables
from invoker.store.sql.statements import Dialect, Done, Steps, Stmt, drive, drive_async
from invoker.store.sqlite import SqliteStore
from invoker.store.sqlite import schema as sqlite_schema
from invoker.store.sqlite.dialect import SqliteDialect
from tests.unit import store_suite as suite
from tests.unit.store_suite import T0, Backend, pending, postgres_url, rule, trigger

store = suite.store  # the fixtures, one run per backend
backend = suite.backend


# --- pure -------------------------------------------------------------------------------


def test_postgres_numbers_the_placeholders_sqlite_runs_them_as_written() -> None:
    sql = "UPDATE queue SET x = ?2 WHERE id = ?1 AND (CAST(?12 AS TEXT) IS NULL OR y = ?12)"
    assert PostgresDialect(None).render(sql) == (
        "UPDATE queue SET x = $2 WHERE id = $1 AND (CAST($12 AS TEXT) IS NULL OR y = $12)"
    )
    assert SqliteDialect().render(sql) == sql
    assert PostgresDialect(None).render(PostgresDialect(None).in_list("id", 3)) == (
        "id = ANY($3::text[])"
    )
    assert SqliteDialect().in_list("id", 3) == "id IN (SELECT value FROM json_each(?3))"


def test_only_postgres_takes_advisory_locks_and_each_schema_has_its_own() -> None:
    assert SqliteDialect().blob_lock(shared=True) == ()
    assert SqliteDialect().backlog_lock("acme") == ()
    (shared,) = PostgresDialect("a").blob_lock(shared=True)
    (exclusive,) = PostgresDialect("a").blob_lock(shared=False)
    assert "lock_shared" in shared.sql and "lock_shared" not in exclusive.sql
    assert shared.args == exclusive.args != PostgresDialect("b").blob_lock(shared=True)[0].args


def scripted(counts: list[int]) -> tuple[list[Stmt], Callable[[Stmt], Done]]:
    """An `execute` that answers each statement with the next changed-row count."""
    ran: list[Stmt] = []

    def execute(stmt: Stmt) -> Done:
        ran.append(stmt)
        return Done(count=counts[len(ran) - 1])

    return ran, execute


@pytest.mark.parametrize("dialect", [SqliteDialect(), PostgresDialect(None)])
def test_a_deferred_call_another_gateway_took_keeps_its_status(dialect: Dialect) -> None:
    ran, execute = scripted([0])
    drive(defer_steps(dialect, "q1", T0, "gw-a"), execute)
    assert len(ran) == 1 and ran[0].sql.startswith("UPDATE queue")
    ran, execute = scripted([1, 1])
    drive(defer_steps(dialect, "q1", T0, "gw-a"), execute)
    assert [s.sql.split()[1] for s in ran] == ["queue", "activations"]
    assert ran[1].args == (["q1"], "pending")


async def test_both_drivers_run_the_same_steps_to_the_same_answer() -> None:
    def steps() -> Steps[int]:
        first = yield Stmt("a")
        second = yield Stmt("b")
        return first.count + second.count

    def execute(stmt: Stmt) -> Done:
        return Done(count={"a": 2, "b": 3}[stmt.sql])

    async def execute_async(stmt: Stmt) -> Done:
        return execute(stmt)

    assert drive(steps(), execute) == 5
    assert await drive_async(steps(), execute_async) == 5


@dataclass(frozen=True)
class Sample:
    name: str
    flag: bool
    note: str = "default"


def test_a_row_becomes_its_dataclass_and_unstored_fields_keep_their_defaults() -> None:
    row = {"name": "a", "flag": 1, "other": "ignored"}
    assert from_row(Sample, row, flag=bool(row["flag"])) == Sample("a", True)


# --- both dialects ----------------------------------------------------------------------


async def test_of_concurrent_creates_of_one_trigger_exactly_one_created_it(
    store: Store, backend: Backend
) -> None:
    peer = await backend.peer(store)
    created = await asyncio.gather(
        *((store if i % 2 else peer).put_trigger(trigger(updated=T0 + i)) for i in range(6))
    )
    assert sorted(created) == [False] * 5 + [True]
    stored = await store.get_trigger("acme", "nightly")
    assert stored is not None and stored.created == T0


async def test_of_concurrent_creates_of_one_rule_exactly_one_created_it(
    store: Store, backend: Backend
) -> None:
    peer = await backend.peer(store)
    created = await asyncio.gather(
        *((store if i % 2 else peer).put_rule(rule("r", f"t{i}")) for i in range(6))
    )
    assert sorted(created) == [False] * 5 + [True]
    assert [r.name for r in await store.list_rules("acme")] == ["r"]


async def test_a_replaced_trigger_changes_only_what_its_owner_may_change(store: Store) -> None:
    await store.put_trigger(trigger(secret_hash="h1"))
    assert await store.mark_fired("acme", "nightly", T0 + 60)
    again = trigger(type="http", config={}, secret_hash="h2", created=T0 + 5, updated=T0 + 9)
    assert await store.put_trigger(again) is False
    stored = await store.get_trigger("acme", "nightly")
    assert stored is not None
    assert (stored.type, dict(stored.config), stored.secret_hash) == ("http", {}, "h2")
    assert (stored.created, stored.updated, stored.last_fire) == (T0, T0 + 9, T0 + 60)
    assert await store.trigger_by_secret("h1") is None


# --- one schema, two dialects -----------------------------------------------------------


async def sqlite_columns(path: Path) -> set[tuple[str, str]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p "
            "WHERE m.type = 'table'"
        )
        return {(table, column) for table, column in rows}
    finally:
        db.close()


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A fresh schema name in the test database, dropped afterwards."""
    name = f"nimbus_test_{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        con = await asyncpg.connect(postgres_url())
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await con.close()


async def postgres_columns(schema: str) -> set[tuple[str, str]]:
    con = await asyncpg.connect(postgres_url())
    try:
        rows = await con.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = $1",
            schema,
        )
    finally:
        await con.close()
    return {(r["table_name"], r["column_name"]) for r in rows}


async def test_both_dialects_make_the_same_tables_and_columns(tmp_path: Path) -> None:
    async with fresh_schema() as schema:
        for opened in (
            SqliteStore(tmp_path / "nimbus.db"),
            PostgresStore(postgres_url(), schema=schema),
        ):
            await opened.open()
            await opened.close()
        in_postgres = await postgres_columns(schema)
    assert ("queue", "lease_until") in in_postgres and ("activations", "size") in in_postgres
    assert await sqlite_columns(tmp_path / "nimbus.db") == in_postgres


# What an older version's store lacked: the queue's leases and the activations' sizes.
DROPPED = (("queue", "claimed_by"), ("queue", "lease_until"), ("activations", "size"))
OLD_ACTIVATION = (
    "INSERT INTO activations (id, tenant, function, version, status, logs, memory_mb{seq}) "
    "VALUES ('old', 'acme', 'resize', 1, 'running', '[\"hello\"]', 128{one})"
)
OLD_QUEUE = (
    "INSERT INTO queue (activation_id, tenant, function, args, attempts, not_before, state, "
    "created) VALUES ('old', 'acme', 'resize', '{}', 0, 1, 'running', 1)"
)


def old_sqlite_store(path: Path) -> Store:
    db = sqlite3.connect(path)
    db.executescript(tables(sqlite_schema.TYPES))
    for table, column in DROPPED:
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute(OLD_ACTIVATION.format(seq=", seq", one=", 1"))
    db.execute(OLD_QUEUE)
    db.commit()
    db.close()
    return SqliteStore(path)


async def old_postgres_store(schema: str) -> Store:
    con = await asyncpg.connect(postgres_url())
    try:
        await con.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
        await con.execute(tables(postgres_schema.TYPES))
        for table, column in DROPPED:
            await con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        await con.execute(OLD_ACTIVATION.format(seq="", one=""))
        await con.execute(OLD_QUEUE)
    finally:
        await con.close()
    return PostgresStore(postgres_url(), schema=schema)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_store_made_before_leases_and_sizes_is_brought_up_to_date(
    kind: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        if kind == "sqlite":
            old = old_sqlite_store(tmp_path / "old.db")
        else:
            old = await old_postgres_store(await stack.enter_async_context(fresh_schema()))
        await old.open()
        stack.push_async_callback(old.close)
        await check_brought_up_to_date(old)


async def check_brought_up_to_date(old: Store) -> None:
    """The older call comes back, costing its lost run, and its size is known."""
    assert await old.requeue_running("gw-a") == 1  # unowned running calls come back
    (call,) = await old.claim(T0, 5, owner="gw-a")
    assert (call.activation_id, call.attempts) == ("old", 1)  # the lost run counts
    page = await old.list_activations_page("acme", None, 10, None, 10**6)
    assert [a.id for a in page.activations] == ["old"]
    assert page.size == len('["hello"]')  # measured for a row written before sizes
    await old.enqueue(pending("new"), {}, T0)
    assert await old.queue_depth() == 2
