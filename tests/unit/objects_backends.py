"""The object store on each of its backends, for tests that must hold on all of them.

- `sqlite-dir`: metadata in SQLite, bytes in a local directory (the embedded default);
- `sqlite-db`: metadata and bytes in SQLite (`DbBlobs` without PostgreSQL);
- `postgres`: metadata and bytes in PostgreSQL at NIMBUS_TEST_POSTGRES_URL, in a schema of
  its own (skipped when the variable is unset).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from invoker.objects.db_blobs import DbBlobs
from invoker.objects.local_blobs import LocalBlobs
from invoker.objects.model import Blobs, chunks
from invoker.objects.opening import BLOB_DIR
from invoker.objects.service import ObjectStore
from invoker.objects.sql import Db, SqlObjectMeta
from invoker.objects.sqlite_db import SqliteDb

PG_URL = os.environ.get("NIMBUS_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite-dir", "sqlite-db", "postgres"]
LIMIT = 1 << 20


@dataclass
class Backend:
    """How to make stores on one backend, and what its bytes storage holds."""

    name: str
    data_dir: Path
    schema: str = field(default_factory=lambda: f"nimbus_obj_{uuid.uuid4().hex[:8]}")

    def db(self) -> Db:
        if self.name == "postgres":
            from invoker.objects.postgres_db import PostgresDb

            return PostgresDb(PG_URL, schema=self.schema)
        return SqliteDb(self.data_dir / "nimbus.db")

    def make(self, wrap: Callable[[Blobs], Blobs] = lambda b: b, **options: Any) -> ObjectStore:
        """A store on this backend (not opened), its bytes storage wrapped by `wrap`."""
        db = self.db()
        blobs: Blobs = (
            LocalBlobs(self.data_dir / BLOB_DIR) if self.name == "sqlite-dir" else DbBlobs(db)
        )
        options.setdefault("max_object_bytes", LIMIT)
        options.setdefault("legacy_dir", self.data_dir)
        return ObjectStore(SqlObjectMeta(db), wrap(blobs), **options)

    async def stored(self) -> set[tuple[str, str]]:
        """Every (tenant, sha256) whose bytes are stored."""
        if self.name == "sqlite-dir":
            root = self.data_dir / BLOB_DIR
            return {
                (f.parent.parent.name, f.name)
                for f in root.rglob("*")
                if f.is_file() and f.parent.name != "_tmp"
            }
        if self.name == "sqlite-db":
            with contextlib.closing(sqlite3.connect(self.data_dir / "nimbus.db")) as db:
                return {(t, s) for t, s in db.execute("SELECT tenant, sha256 FROM object_blobs")}
        import asyncpg

        conn = await asyncpg.connect(PG_URL)
        try:
            rows = await conn.fetch(f'SELECT tenant, sha256 FROM "{self.schema}".object_blobs')
        finally:
            await conn.close()
        return {(r["tenant"], r["sha256"]) for r in rows}

    async def drop(self) -> None:
        if self.name == "postgres":
            import asyncpg

            conn = await asyncpg.connect(PG_URL)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            finally:
                await conn.close()


@pytest.fixture(params=BACKENDS)
async def objects_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "postgres" and not PG_URL:
        pytest.skip("NIMBUS_TEST_POSTGRES_URL is not set")
    found = Backend(request.param, tmp_path / "data")
    try:
        yield found
    finally:
        await found.drop()


@contextlib.asynccontextmanager
async def opened(store: ObjectStore) -> AsyncIterator[ObjectStore]:
    """The store, open for the block."""
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def read_all(store: ObjectStore, tenant: str, bucket: str, key: str) -> bytes | None:
    """An object's bytes, or None when there is no such key."""
    found = await store.open_object(tenant, bucket, key)
    if found is None:
        return None
    _, source = found
    try:
        return b"".join([chunk async for chunk in chunks(source, 7)])
    finally:
        await source.close()
