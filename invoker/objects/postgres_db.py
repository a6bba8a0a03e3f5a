"""The object tables in the PostgreSQL store's database, shared by every gateway on it.

Its own asyncpg pools on the store's URL (and `nimbus_schema`), of up to `max_connections`
each, opened as needed: one for transactions, one for pins. A pin is a session advisory
lock held on a connection of the pin pool for the length of a block; the block's own
statements take connections from the other pool, so a full pin pool only makes pins wait,
never a statement a pin holder needs. Transaction locks are advisory locks that end with
the transaction.

Object bytes are in `object_blobs` (see `db_blobs`); `data` is stored uncompressed
(STORAGE EXTERNAL): objects are mostly compressed already (images, archives).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from invoker.objects.sql import Row, Tx, object_tables

SCHEMA = (
    object_tables(
        real="DOUBLE PRECISION", integer="BIGINT", ordered_text='TEXT COLLATE "C"', blob="BYTEA"
    )
    + """
DO $$ BEGIN
    IF (SELECT attstorage FROM pg_attribute
        WHERE attrelid = 'object_blobs'::regclass AND attname = 'data') <> 'e' THEN
        ALTER TABLE object_blobs ALTER COLUMN data SET STORAGE EXTERNAL;
    END IF;
END $$;
"""
)


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (no statement here has a literal ?)."""
    first, *rest = sql.split("?")
    return first + "".join(f"${i}{part}" for i, part in enumerate(rest, 1))


def lock_key(label: str) -> int:
    """A stable signed 64-bit advisory-lock key for a label."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big", signed=True)


def quote_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _rowcount(status: str) -> int:
    """The row count from a command tag such as 'DELETE 1'."""
    return int(status.rsplit(" ", 1)[-1])


class _PostgresTx:
    def __init__(self, con: Any, namespace: str) -> None:
        self._con = con
        self._namespace = namespace

    async def one(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._con.fetchrow(numbered(sql), *args)
        return row

    async def all(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._con.fetch(numbered(sql), *args)
        return rows

    async def run(self, sql: str, *args: Any) -> int:
        return _rowcount(await self._con.execute(numbered(sql), *args))

    async def lock(self, label: str, *, shared: bool = False) -> None:
        """An advisory lock, released when the transaction ends."""
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await self._con.execute(f"SELECT {fn}($1)", lock_key(self._namespace + label))


class PostgresDb:
    """The `Db` dialect over a PostgreSQL database (tables in `schema` when given)."""

    def __init__(self, url: str, *, schema: str | None = None, max_connections: int = 5) -> None:
        self._url = url
        self._schema = schema
        self._max_connections = max_connections
        # Locks of one schema never wait on another schema's (tests share one database).
        self._namespace = f"nimbus.objects:{schema or ''}:"
        self._pool: Any = None
        self._pins: Any = None

    async def open(self) -> None:
        """Connect and create the schema and tables if needed (safe from several gateways)."""
        settings = {} if self._schema is None else {"search_path": quote_ident(self._schema)}
        self._pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=self._max_connections, server_settings=settings
        )
        self._pins = await asyncpg.create_pool(
            self._url, min_size=1, max_size=self._max_connections, server_settings=settings
        )
        async with self._pool.acquire() as con, con.transaction():
            # The main store's schema lock: its DDL and ours never run at once.
            await con.execute(
                "SELECT pg_advisory_xact_lock($1)", lock_key(f"nimbus.schema:{self._schema or ''}")
            )
            if self._schema is not None:
                await con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self._schema)}")
            await con.execute(SCHEMA)

    async def close(self) -> None:
        """Close both pools."""
        for pool in (self._pins, self._pool):
            if pool is not None:
                await pool.close()
        self._pool = self._pins = None

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Tx]:
        """A pooled connection inside one transaction: commit, or roll back on error."""
        assert self._pool is not None, "object store is not open"
        async with self._pool.acquire() as con, con.transaction(readonly=not write):
            yield _PostgresTx(con, self._namespace)

    @asynccontextmanager
    async def pinned(self, label: str) -> AsyncIterator[None]:
        """A session advisory lock for the block (released with the connection, too)."""
        assert self._pins is not None, "object store is not open"
        key = lock_key(self._namespace + label)
        async with self._pins.acquire() as con:
            await con.execute("SELECT pg_advisory_lock($1)", key)
            try:
                yield
            finally:
                await con.execute("SELECT pg_advisory_unlock($1)", key)
