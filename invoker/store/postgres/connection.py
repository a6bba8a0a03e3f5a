"""The PostgreSQL store's connection pool, shareable by several gateways.

asyncpg is natively async: no threads. Every multi-statement operation (the shared steps,
`invoker.store.sql`) runs in one transaction on one pooled connection; a single statement
runs on its own (its own implicit transaction).

JSON columns are text holding `json.dumps` output, as in SQLite: it round-trips exactly
(key order, 1.0 vs 1) and, unlike jsonb, accepts "\\u0000". Usage records are stored
as their JSON row too, so `gb_seconds` stays an exact decimal string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from invoker.store.errors import StoreFull
from invoker.store.postgres.dialect import PostgresDialect, lock_key
from invoker.store.postgres.schema import SCHEMA
from invoker.store.sql.statements import Dialect, Done, SqlStore, Steps, Stmt, drive_async

T = TypeVar("T")


def quote_ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def rowcount(status: str) -> int:
    """The row count from a command tag such as 'DELETE 1'."""
    return int(status.rsplit(" ", 1)[-1])


@asynccontextmanager
async def full_as_store_full() -> AsyncIterator[None]:
    """PostgreSQL's disk_full (rolled back) as the store's typed StoreFull."""
    try:
        yield
    except asyncpg.DiskFullError as exc:
        raise StoreFull(str(exc)) from exc


async def execute(con: Any, dialect: Dialect, stmt: Stmt) -> Done:
    """Run one statement on `con`."""
    sql = dialect.render(stmt.sql)
    if stmt.many is not None:
        await con.executemany(sql, stmt.many)
        return Done(count=len(stmt.many))
    if stmt.rows:
        rows = await con.fetch(sql, *stmt.args)
        return Done(list(rows), len(rows))
    return Done(count=rowcount(await con.execute(sql, *stmt.args)))


class PostgresConnection(SqlStore):
    """A pool on one database; `schema`, when given, is created if missing and put first on
    every connection's search_path (one database can then hold several independent stores).
    """

    def __init__(self, url: str, *, schema: str | None = None, max_connections: int = 10) -> None:
        self.dialect = PostgresDialect(schema)
        self._url = url
        self._schema = schema
        self._max_connections = max_connections
        self._pool: Any = None
        self._schema_lock = lock_key(f"nimbus.schema:{schema or ''}")

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        """A pooled connection inside one transaction: commit, or roll back on error."""
        assert self._pool is not None, "store is not open"
        async with full_as_store_full(), self._pool.acquire() as con, con.transaction():
            yield con

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A pooled connection for a single statement (its own implicit transaction)."""
        assert self._pool is not None, "store is not open"
        async with full_as_store_full(), self._pool.acquire() as con:
            yield con

    async def _steps(self, steps: Steps[T]) -> T:
        """The steps in one transaction, a round trip per statement."""
        async with self._tx() as con:
            return await drive_async(steps, lambda stmt: execute(con, self.dialect, stmt))

    async def _once(self, stmt: Stmt) -> Done:
        """One statement, outside any transaction of ours."""
        async with self._conn() as con:
            return await execute(con, self.dialect, stmt)

    async def open(self) -> None:
        """Connect and create the schema and tables if needed (safe from several gateways)."""
        settings = {} if self._schema is None else {"search_path": quote_ident(self._schema)}
        self._pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=self._max_connections, server_settings=settings
        )
        try:
            async with self._tx() as con:
                # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog.
                await con.execute("SELECT pg_advisory_xact_lock($1)", self._schema_lock)
                if self._schema is not None:
                    await con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self._schema)}")
                await con.execute(SCHEMA)
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def commit_queued(self) -> None:
        """Nothing is queued: every write, a call's record too, is committed before the
        call that makes it returns (`save_activation`'s `wait` is SQLite's)."""

    async def close(self) -> None:
        """Close the pool (waiting for statements in flight)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
