"""A full disk is a typed StoreFull in both dialects, recognised through exception chains."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from invoker.store.errors import StoreFull, is_storage_full
from invoker.store.postgres.connection import full_as_store_full
from invoker.store.sqlite import SqliteStore


def sqlite_full_error(tmp_path: Path) -> sqlite3.OperationalError:
    """A real SQLITE_FULL: a database capped at its current size, written to."""
    db = sqlite3.connect(tmp_path / "capped.db")
    try:
        db.execute("CREATE TABLE t (x BLOB)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(sqlite3.OperationalError) as caught:
            db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
        return caught.value
    finally:
        db.close()


def test_what_counts_as_a_full_disk(tmp_path: Path) -> None:
    assert is_storage_full(StoreFull("full"))
    assert is_storage_full(sqlite_full_error(tmp_path))
    assert is_storage_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_storage_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_storage_full(asyncpg.DiskFullError("could not extend file"))
    try:  # found through the chain: a wrapper raised from (or while handling) it
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("saving failed") from exc
    except RuntimeError as wrapped:
        assert is_storage_full(wrapped)
    assert not is_storage_full(sqlite3.OperationalError("database is locked"))
    assert not is_storage_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_storage_full(asyncpg.UniqueViolationError("duplicate key"))
    assert not is_storage_full(ValueError("bad"))


async def test_a_full_sqlite_store_refuses_with_store_full_and_loses_nothing(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "nimbus.db")
    await store.open()
    try:
        assert await store.create_tenant("kept", "h0")

        def cap(db: sqlite3.Connection) -> None:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")

        await store._run(cap)
        with pytest.raises(StoreFull):
            for i in range(1, 200):
                await store.create_tenant(f"t{i}-" + "x" * 2000, f"h{i}")
        assert await store.tenant_for_key("h0") == "kept"  # reads still work
        await store._run(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
        assert await store.create_tenant("after", "h-after")  # and writes, once freed
        ok = await store._run(lambda db: db.execute("PRAGMA integrity_check").fetchone()[0])
        assert ok == "ok"
    finally:
        await store.close()


async def test_postgres_disk_full_is_store_full() -> None:
    with pytest.raises(StoreFull) as caught:
        async with full_as_store_full():
            raise asyncpg.DiskFullError("could not extend file")
    assert isinstance(caught.value.__cause__, asyncpg.DiskFullError)
    with pytest.raises(asyncpg.UniqueViolationError):  # anything else passes through
        async with full_as_store_full():
            raise asyncpg.UniqueViolationError("duplicate key")
