"""What the SQLite store does with activations beyond the shared SQL: writing an
activation behind the caller, and giving deleted rows' space back to the file system.

Space: a store made with this code uses `auto_vacuum=INCREMENTAL` (set on open before the
first table exists), and `reclaim_space` gives freed pages back after a sweep. A store
made before keeps `auto_vacuum=NONE`: its freed pages are reused by later writes (the file
stops growing but does not shrink) until an operator runs `VACUUM` once with the gateway
stopped (docs/api.md, "Retention").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from invoker.api import Activation
from invoker.store.sql.activations import (
    USAGE_INSERT,
    SqlActivations,
    activation_args,
    save_steps,
    upsert_sql,
    usage_args,
)
from invoker.store.sqlite.connection import SqliteConnection
from invoker.store.sqlite.dialect import SqliteDialect
from invoker.store.sqlite.loop_writes import small_activation

_UPSERT_SQL = upsert_sql(SqliteDialect())

VACUUM_STEP_PAGES = 2048
"""Pages given back per transaction: other store work goes on between steps."""


def _vacuum_step(db: sqlite3.Connection) -> int:
    """Give up to `VACUUM_STEP_PAGES` free pages back; how many were free before."""
    if int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:  # 2 = incremental
        return 0
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    if free:
        # executescript steps the pragma to its end (`execute` stops after one page).
        db.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES});")
    return free


class SqliteActivations(SqlActivations, SqliteConnection):
    """The shared activation SQL, with SQLite's write-behind and space reclaim."""

    async def save_activation(
        self, activation: Activation, usage: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> None:
        """The shared upsert; `wait=False` queues it behind (a synchronous call's answer
        need not wait for its record) and every later store call still sees it."""
        if wait:
            await self._steps(save_steps(self.dialect, activation, usage))
            return
        d = self.dialect
        small = small_activation(activation)  # cheap to write on the loop (loop_writes.py)
        self._write_behind(_UPSERT_SQL, lambda: activation_args(d, activation), small=small)
        if usage is not None:
            self._write_behind(USAGE_INSERT, lambda: usage_args(activation, usage), small=small)

    async def reclaim_space(self) -> int:
        """Give the pages deleted rows freed back to the file system; how many were free."""
        first = free = await self._run(_vacuum_step)
        while free > VACUUM_STEP_PAGES:
            free = await self._run(_vacuum_step)
        # Moved pages reach the file at a checkpoint; TRUNCATE also empties the log.
        await self._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
        return first
