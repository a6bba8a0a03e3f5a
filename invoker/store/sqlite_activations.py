"""The SQLite store's activation history: byte-capped pages, deletion, retention, space.

Mixed into `SqliteStore` (which provides `_run`). Results and logs can be megabytes, stored
on overflow pages that SQLite reads in a chain: every query here reads sizes, ids and times
from indexes (`ACTIVATIONS_SCHEMA`) and loads whole rows only for the records it returns.

Space: a store made with this code uses `auto_vacuum=INCREMENTAL` (set by `SqliteStore.open`
before the first table exists), and `reclaim_space` gives freed pages back to the file
system after a sweep. A store made before keeps `auto_vacuum=NONE`: its freed pages are
reused by later writes (the file stops growing but does not shrink) until an operator runs
`VACUUM` once with the gateway stopped (docs/api.md, "Retention").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from invoker.store.lifecycle import (
    DELETE_BATCH,
    ActivationPage,
    Removal,
    fit_page,
    page_end,
)
from invoker.store.rows import activation_from_row

T = TypeVar("T")

VACUUM_STEP_PAGES = 2048
"""Pages given back per transaction: other store work goes on between steps."""

WAL_LIMIT_BYTES = 64 * 2**20
"""The write-ahead log is cut back to this after a checkpoint (moving pages grows it)."""

# `size` and `seq` in the page indexes: sizes are read without touching a row. The time
# index matches `_TIME` exactly, or SQLite would not use it.
_TIME = 'COALESCE(a.start, a."end")'
ACTIVATIONS_INDEXES = """
DROP INDEX IF EXISTS activations_by_tenant; -- (tenant, function, seq): a prefix of the second
CREATE INDEX IF NOT EXISTS activations_page ON activations (tenant, seq, size);
CREATE INDEX IF NOT EXISTS activations_page_by_function
    ON activations (tenant, function, seq, size);
CREATE INDEX IF NOT EXISTS activations_by_time ON activations (COALESCE(start, "end"), tenant);
"""
_BACKFILL_SIZE = (
    "UPDATE activations SET size = "
    "IFNULL(length(CAST(result AS BLOB)), 0) + length(CAST(logs AS BLOB)) "
    "+ IFNULL(length(CAST(error AS BLOB)), 0) WHERE size IS NULL"
)
_NOT_QUEUED = "a.id NOT IN (SELECT activation_id FROM queue)"


def migrate_activations(db: sqlite3.Connection) -> None:
    """On open (autocommit): the `size` column, filled once for older rows, and the indexes."""
    columns = {r["name"] for r in db.execute("PRAGMA table_info(activations)")}
    if "size" not in columns:
        db.execute("ALTER TABLE activations ADD COLUMN size INTEGER")
        db.execute(_BACKFILL_SIZE)  # once: every later write sets it
    db.executescript(ACTIVATIONS_INDEXES)
    db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")


def _filters(
    tenant: str | None, function: str | None, before_time: float | None
) -> tuple[str, list[Any]]:
    """A WHERE clause over `activations a` and its arguments."""
    where, args = ["1 = 1"], list[Any]()
    if tenant is not None:
        # By time, `+` keeps SQLite off the tenant index: finding a row's time through it
        # would read the row's whole overflow chain (the time comes after result and logs).
        term = "+a.tenant = ?" if before_time is not None else "a.tenant = ?"
        where, args = [*where, term], [*args, tenant]
    if function is not None:
        where, args = [*where, "a.function = ?"], [*args, function]
    if before_time is not None:
        where, args = [*where, f"{_TIME} < ?"], [*args, before_time]
    return " AND ".join(where), args


def _page(
    db: sqlite3.Connection,
    tenant: str,
    function: str | None,
    limit: int,
    before_seq: int | None,
    max_bytes: int,
) -> ActivationPage:
    where, args = _filters(tenant, function, None)
    if before_seq is not None:
        where, args = f"{where} AND a.seq < ?", [*args, before_seq]
    heads = db.execute(
        f"SELECT a.rowid AS rid, a.seq AS seq, IFNULL(a.size, 0) AS size FROM activations a "
        f"WHERE {where} ORDER BY a.seq DESC LIMIT ?",
        [*args, limit + 1],
    ).fetchall()
    count, truncated = fit_page([h["size"] for h in heads], limit, max_bytes)
    chosen = [h["rid"] for h in heads[:count]]
    marks = ",".join("?" * len(chosen))
    rows = db.execute(
        f"SELECT * FROM activations WHERE rowid IN ({marks}) ORDER BY seq DESC", chosen
    ).fetchall()
    return ActivationPage(
        activations=[activation_from_row(r) for r in rows],
        next_seq=page_end([h["seq"] for h in heads], count),
        truncated=truncated,
        size=sum(h["size"] for h in heads[:count]),
    )


def _delete_batch(db: sqlite3.Connection, where: str, args: list[Any]) -> int:
    """Delete up to `DELETE_BATCH` matching activations that are not queued or running."""
    cur = db.execute(
        "DELETE FROM activations WHERE rowid IN (SELECT a.rowid FROM activations a "
        f"WHERE {where} AND {_NOT_QUEUED} LIMIT {DELETE_BATCH})",
        args,
    )
    return int(cur.rowcount)


def _remove_one(db: sqlite3.Connection, tenant: str, activation_id: str) -> Removal:
    row = db.execute(
        "SELECT rowid FROM activations WHERE id = ? AND tenant = ?", (activation_id, tenant)
    ).fetchone()
    if row is None:
        return Removal.MISSING
    if db.execute("SELECT 1 FROM queue WHERE activation_id = ?", (activation_id,)).fetchone():
        return Removal.QUEUED
    db.execute("DELETE FROM activations WHERE rowid = ?", (row[0],))
    return Removal.DELETED


def _vacuum_step(db: sqlite3.Connection) -> int:
    """Give up to `VACUUM_STEP_PAGES` free pages back; how many were free before."""
    if int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:  # 2 = incremental
        return 0
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    if free:
        # executescript steps the pragma to its end (`execute` stops after one page).
        db.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES});")
    return free


class SqliteActivations:
    """Activation pages, deletion and retention; mixed into `SqliteStore`."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's

    async def list_activations_page(
        self,
        tenant: str,
        function: str | None,
        limit: int,
        before_seq: int | None,
        max_bytes: int,
    ) -> ActivationPage:
        """The tenant's newest activations older than `before_seq`, within `max_bytes`."""
        return await self._run(lambda db: _page(db, tenant, function, limit, before_seq, max_bytes))

    async def delete_activation(self, tenant: str, activation_id: str) -> Removal:
        """Delete one of the tenant's activations (never one still queued or running)."""
        return await self._run(lambda db: _remove_one(db, tenant, activation_id))

    async def delete_activations(
        self, tenant: str | None, function: str | None, before: float
    ) -> int:
        """Delete activations that started (or, never started, ended) before `before`.

        Of one tenant (None: every tenant, the retention sweep), optionally of one
        function; calls still queued or running stay. Batches of `DELETE_BATCH`, each its
        own transaction. Returns how many went.
        """
        where, args = _filters(tenant, function, before)
        total = 0
        while True:
            deleted = await self._run(lambda db: _delete_batch(db, where, args))
            total += deleted
            if deleted < DELETE_BATCH:
                return total

    async def reclaim_space(self) -> int:
        """Give the pages deleted rows freed back to the file system; how many were free."""
        first = free = await self._run(_vacuum_step)
        while free > VACUUM_STEP_PAGES:
            free = await self._run(_vacuum_step)
        # Moved pages reach the file at a checkpoint; TRUNCATE also empties the log.
        await self._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
        return first
