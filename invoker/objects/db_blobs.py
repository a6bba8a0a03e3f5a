"""Object bytes in the store's database, next to their metadata (`object_blobs`).

What several gateways on one PostgreSQL use: every replica sees every object's bytes with
nothing to share but the database (docs/buckets.md says why this and not a shared
volume). A read holds the whole object in memory, as a put already does (both are capped
by the object size limit), so that no connection waits on a slow client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from invoker.objects.model import BlobRef, BlobSource
from invoker.objects.sql import Db

BLOB_EXISTS = "SELECT 1 FROM object_blobs WHERE tenant = ? AND sha256 = ?"
PUT_BLOB = "INSERT INTO object_blobs (tenant, sha256, data) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
GET_BLOB = "SELECT data FROM object_blobs WHERE tenant = ? AND sha256 = ?"
DELETE_BLOB = "DELETE FROM object_blobs WHERE tenant = ? AND sha256 = ?"
ORPHANS = (
    "SELECT tenant, sha256 FROM object_blobs b WHERE NOT EXISTS "
    "(SELECT 1 FROM objects o WHERE o.tenant = b.tenant AND o.sha256 = b.sha256)"
)


class MemorySource:
    """Bytes already read, handed out a chunk at a time."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    async def read(self, size: int) -> bytes:
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return bytes(chunk)

    async def close(self) -> None:
        self._data.release()


class DbBlobs:
    """The `Blobs` protocol over the object tables' dialect `db` (opened by its meta)."""

    def __init__(self, db: Db) -> None:
        self._db = db

    async def open(self) -> None:
        """Nothing to prepare: the table comes with the object tables."""

    async def close(self) -> None:
        """Nothing to release: the connections are the metadata's."""

    async def put(self, ref: BlobRef, data: bytes) -> None:
        """Store the bytes unless they are there (then they are not sent again)."""
        async with self._db.transaction(write=True) as tx:
            if await tx.one(BLOB_EXISTS, ref.tenant, ref.sha256) is None:
                await tx.run(PUT_BLOB, ref.tenant, ref.sha256, data)

    async def get(self, ref: BlobRef) -> BlobSource | None:
        """The bytes, read whole; None when they are not stored."""
        async with self._db.transaction(write=False) as tx:
            row = await tx.one(GET_BLOB, ref.tenant, ref.sha256)
        return None if row is None else MemorySource(row["data"])

    async def delete(self, ref: BlobRef) -> None:
        """Remove the bytes."""
        async with self._db.transaction(write=True) as tx:
            await tx.run(DELETE_BLOB, ref.tenant, ref.sha256)

    async def orphans(self, named: Callable[[], Awaitable[set[BlobRef]]]) -> list[BlobRef]:
        """Bytes no object names, found by the database (`named` is not needed)."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.all(ORPHANS)
        return [BlobRef(r["tenant"], r["sha256"]) for r in rows]
