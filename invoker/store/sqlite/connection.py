"""The SQLite store's one connection, used from one dedicated thread.

SQLite serialises writers anyway, and a single thread keeps every statement off the
event loop without locking games. WAL mode lets readers (a second process, the CLI) look
while we write. Every operation is one transaction on that thread: the shared steps
(`invoker.store.sql`) run to their end there in one hop, and a write-behind (an
activation record the caller need not wait for) joins the next batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from invoker.store.errors import StoreFull, is_storage_full
from invoker.store.sql.statements import Done, SqlStore, Steps, Stmt, drive
from invoker.store.sqlite.dialect import SqliteDialect
from invoker.store.sqlite.loop_writes import LoopWriter, connect
from invoker.store.sqlite.schema import migrate

T = TypeVar("T")
log = logging.getLogger("nimbus.store")

WRITE_BEHIND_WINDOW_S = 0.005
"""How long a queued write waits for others to share its transaction. Another process
(a second worker, the CLI reading the file) may see a record this much later."""


def _bindable(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Arguments as sqlite3 binds them: a list parameter as its JSON array."""
    return tuple(json.dumps(a) if isinstance(a, list) else a for a in args)


def execute(db: sqlite3.Connection, stmt: Stmt) -> Done:
    """Run one statement on the store's thread."""
    if stmt.many is not None:
        cur = db.executemany(stmt.sql, [_bindable(a) for a in stmt.many])
        return Done(count=cur.rowcount)
    cur = db.execute(stmt.sql, _bindable(stmt.args))
    if stmt.rows:
        rows = cur.fetchall()
        return Done(rows, len(rows))
    return Done(count=cur.rowcount)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a queued store write failed", exc_info=future.exception())


def _nothing() -> None:
    """A job for the store's thread that only marks a place in its queue."""


def _checkpoint(db: sqlite3.Connection) -> None:
    """Copy the log's committed pages into the file (never waiting for readers)."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class SqliteConnection(SqlStore):
    """One SQLite file, its connection and its thread; `open` creates the schema."""

    def __init__(self, path: Path) -> None:
        self.dialect = SqliteDialect()
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nimbus-sqlite")
        self._db: sqlite3.Connection | None = None
        self._behind: dict[str, list[Callable[[], tuple[Any, ...]]]] = {}
        self._behind_small = True  # every queued write cheap to build on the loop
        self._flush: asyncio.TimerHandle | None = None
        self._loop_writer: LoopWriter | None = None  # small batches (`loop_writes.py`)
        self._batches_in_hand = 0  # queued batches handed to the store's thread, not done

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._db is not None, "store is not open"
        try:
            with self._db:  # one transaction per call: commit, or roll back on error
                return fn(self._db)
        except sqlite3.OperationalError as exc:
            if is_storage_full(exc):  # rolled back: callers answer it, not as a bug
                raise StoreFull(str(exc)) from exc
            raise

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(db)` in one transaction on the store's thread, after every queued write."""
        self._submit_behind()  # queued writes go first, so this call sees them
        return await self._hand(self._tx, fn)

    def _hand(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` on the store's thread, after what it was handed before."""
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _batch_done(self, future: asyncio.Future[Any]) -> None:
        self._batches_in_hand -= 1
        _log_failure(future)

    async def _steps(self, steps: Steps[T]) -> T:
        """The steps, to their end, in one transaction on the store's thread."""
        return await self._run(lambda db: drive(steps, lambda stmt: execute(db, stmt)))

    async def _once(self, stmt: Stmt) -> Done:
        """One statement on the store's thread."""
        return await self._run(lambda db: execute(db, stmt))

    def _write_behind(
        self, sql: str, args: Callable[[], tuple[Any, ...]], *, small: bool = False
    ) -> None:
        """Queue one statement and return at once; every later store call still sees it.

        Group commit: writes queued within `WRITE_BEHIND_WINDOW_S` share a transaction, so
        the store thread wakes once per batch instead of once per write (a commit costs it
        ~0.25 ms), and each statement text runs once for all its rows (`executemany`), in
        the order they were queued. `args` builds the row, bound as it is (no list to turn
        into JSON), on the store's thread (off the
        event loop), or on the loop when every write of the batch is `small`
        (`loop_writes.py`). Texts must not depend on each other's order: a batch runs each
        text's rows in turn. Reads and `close` flush first, so nothing queued is ever
        skipped here.
        """
        self._behind_small = self._behind_small and small
        rows = self._behind.get(sql)
        if rows is None:
            rows = self._behind[sql] = []
        rows.append(args)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(
                WRITE_BEHIND_WINDOW_S, self._submit_behind
            )

    def _submit_behind(self) -> None:
        """Hand every queued write to the store thread as one transaction."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if not self._behind:
            return
        batch, self._behind = self._behind, {}
        small, self._behind_small = self._behind_small, True
        here = self._loop_writer
        # On the loop only when no earlier batch is still in the thread's hands, so queued
        # writes commit in order (a thread busy with a read or a claim does not matter: the
        # loop's connection takes the write lock at once or leaves the batch to the thread).
        if here is not None and small and self._batches_in_hand == 0 and here.write(batch):
            if here.checkpoint_due():  # the loop's connection never checkpoints itself
                self._hand(self._tx, _checkpoint).add_done_callback(_log_failure)
            return

        def write(db: sqlite3.Connection) -> None:
            for sql, rows in batch.items():
                db.executemany(sql, [args() for args in rows])

        self._batches_in_hand += 1
        self._hand(self._tx, write).add_done_callback(self._batch_done)

    async def commit_queued(self) -> None:
        """Commit every write queued behind its caller; return once it is committed, and so
        visible to other connections (another worker's, the CLI's)."""
        self._submit_behind()
        # The store's one thread runs its jobs in order: once this one runs, every batch
        # handed to it before (this one's included) has committed or failed (and logged);
        # a batch written on the loop was committed before `_submit_behind` returned.
        await self._hand(_nothing)

    async def open(self) -> None:
        """Open the file (creating the schema) on the store's own thread."""

        def open_both() -> None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            # Before the first table: a new store can give freed pages back (retention).
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            migrate(db)
            db.isolation_level = "DEFERRED"  # back to implicit transactions for `with db:`
            self._db = db
            self._loop_writer = LoopWriter(connect(self._path))

        await asyncio.get_running_loop().run_in_executor(self._pool, open_both)

    async def close(self) -> None:
        """Write what is queued, then close the database and the store's thread."""

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._submit_behind()
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=True)
