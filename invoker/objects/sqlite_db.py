"""The object tables in the SQLite store's own file, for the embedded default.

Its own connection to the store's database file (the main store keeps its own), used
from one dedicated thread, so no statement runs on the event loop. One transaction at a
time: BEGIN IMMEDIATE takes SQLite's write lock up front (waiting, up to BUSY_TIMEOUT_S,
while the main store writes), so locks between transactions are not needed. Pins are
in-process: one gateway serves a SQLite data dir.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from invoker.objects.sql import Row, Tx, object_tables

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0

SCHEMA = object_tables(real="REAL", integer="INTEGER", ordered_text="TEXT", blob="BLOB")


class KeyedLocks:
    """One asyncio lock per name, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the lock named `name` for the block."""
        lock, users = self._locks.get(name, (asyncio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S
    )
    db.row_factory = sqlite3.Row
    # As the main store does before its first table (it may open the file after us).
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL (this connection only): a row's removal must be on disk before its
    # bytes are removed, or a power cut could bring back a row whose bytes are gone.
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(SCHEMA)
    return db


Call = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


class _SqliteTx:
    def __init__(self, call: Call) -> None:
        self._call = call

    async def one(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._call(lambda db: db.execute(sql, args).fetchone())
        return row

    async def all(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._call(lambda db: db.execute(sql, args).fetchall())
        return rows

    async def run(self, sql: str, *args: Any) -> int:
        count: int = await self._call(lambda db: db.execute(sql, args).rowcount)
        return count

    async def lock(self, label: str, *, shared: bool = False) -> None:
        """Nothing to do: BEGIN IMMEDIATE already serialises every writer."""


class SqliteDb:
    """The `Db` dialect over the SQLite file at `path`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nimbus-objects-db")
        self._db: sqlite3.Connection | None = None
        self._one_at_a_time = asyncio.Lock()
        self._pins = KeyedLocks()

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "object store is not open"
            return fn(self._db)

        return await self._on_thread(call)

    async def open(self) -> None:
        """Open the file and create the object tables, on the dedicated thread."""
        self._db = await self._on_thread(lambda: _connect(self._path))

    async def close(self) -> None:
        """Close the connection (after the queued jobs, on their thread), then the thread."""

        def shut() -> None:
            db, self._db = self._db, None
            if db is not None:
                db.close()

        await self._on_thread(shut)
        self._pool.shutdown(wait=True)

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Tx]:
        """One transaction at a time on the connection; commit, or roll back on error."""
        async with self._one_at_a_time:
            try:
                await self._call(lambda db: db.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
                yield _SqliteTx(self._call)
                await self._call(lambda db: db.execute("COMMIT"))
            except BaseException:
                # Queued, not awaited: it runs before any later job on the one thread, even
                # when this task is being cancelled.
                self._pool.submit(self._rollback)
                raise

    def _rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def pinned(self, label: str) -> AbstractAsyncContextManager[None]:
        """Hold the in-process lock named `label` for the block."""
        return self._pins.hold(label)
