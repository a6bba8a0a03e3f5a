"""Object metadata in SQL, written once for both dialects.

A dialect (`sqlite_db.SqliteDb`, `postgres_db.PostgresDb`) provides transactions (`Tx`),
advisory locks and pins (`Db`); the statements and the rules of each operation are here.
Statements use `?` placeholders; the PostgreSQL dialect numbers them.

Concurrency, for several gateways on one PostgreSQL (SQLite serialises writers anyway):
a put holds its bucket's lock shared and its key's lock exclusive until it commits, and a
bucket's deletion holds the bucket's lock exclusive; so no object is ever committed into
a bucket being deleted, and two puts of one key see each other's row (and so the replaced
bytes are always known, to be collected).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, Protocol

from invoker.objects.model import BlobRef, BucketInfo, Clock, KeyRange, ObjectInfo
from invoker.objects.names import BucketNotEmpty, NoSuchBucket

Row = Mapping[str, Any]

OBJECT_COLUMNS = "bucket, key, size, content_type, sha256, created, updated"

BUCKET_EXISTS = "SELECT 1 FROM buckets WHERE tenant = ? AND name = ?"
INSERT_BUCKET = (
    "INSERT INTO buckets (tenant, name, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
LIST_BUCKETS = "SELECT name, created FROM buckets WHERE tenant = ? ORDER BY name"
ANY_OBJECT = "SELECT 1 FROM objects WHERE tenant = ? AND bucket = ? LIMIT 1"
DELETE_BUCKET = "DELETE FROM buckets WHERE tenant = ? AND name = ?"
GET_OBJECT = f"SELECT {OBJECT_COLUMNS} FROM objects WHERE tenant = ? AND bucket = ? AND key = ?"
INSERT_OBJECT = (
    f"INSERT INTO objects (tenant, {OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (tenant, bucket, key) "
)
# `created` stays as the key was first written.
UPSERT_OBJECT = INSERT_OBJECT + (
    "DO UPDATE SET size = excluded.size, content_type = excluded.content_type, "
    "sha256 = excluded.sha256, updated = excluded.updated"
)
IMPORT_OBJECT = INSERT_OBJECT + "DO NOTHING"
DELETE_OBJECT = "DELETE FROM objects WHERE tenant = ? AND bucket = ? AND key = ?"
# Keys compare as code points in both dialects (SQLite's BINARY collation on UTF-8,
# PostgreSQL's "C" collation on the column); one row past the page tells truncation.
LIST_OBJECTS = (
    f"SELECT {OBJECT_COLUMNS} FROM objects "
    "WHERE tenant = ? AND bucket = ? AND key >= ? AND key > ? "
    "AND (CAST(? AS TEXT) IS NULL OR key < ?) ORDER BY key LIMIT ?"
)
REFERENCED = "SELECT 1 FROM objects WHERE tenant = ? AND sha256 = ? LIMIT 1"
ALL_REFS = "SELECT DISTINCT tenant, sha256 FROM objects"


def object_tables(*, real: str, integer: str, ordered_text: str, blob: str) -> str:
    """The object tables in a dialect's types (`ordered_text` sorts by code point)."""
    return f"""
CREATE TABLE IF NOT EXISTS buckets (
    tenant TEXT NOT NULL,
    name {ordered_text} NOT NULL,
    created {real} NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS objects (
    tenant TEXT NOT NULL,
    bucket {ordered_text} NOT NULL,
    key {ordered_text} NOT NULL,
    size {integer} NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created {real} NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (tenant, bucket, key),
    FOREIGN KEY (tenant, bucket) REFERENCES buckets (tenant, name)
);
CREATE INDEX IF NOT EXISTS objects_by_blob ON objects (tenant, sha256);
CREATE TABLE IF NOT EXISTS object_blobs (
    tenant TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (tenant, sha256)
);
"""


class Tx(Protocol):
    """One open transaction of a dialect."""

    async def one(self, sql: str, *args: Any) -> Row | None:
        """The first row of a query, or None."""
        ...

    async def all(self, sql: str, *args: Any) -> list[Row]:
        """Every row of a query."""
        ...

    async def run(self, sql: str, *args: Any) -> int:
        """Run a statement; how many rows it changed."""
        ...

    async def lock(self, label: str, *, shared: bool = False) -> None:
        """Hold a lock named `label` until the transaction ends (against other gateways;
        a dialect whose writers are serialised anyway does nothing)."""
        ...


class Db(Protocol):
    """A dialect: its connection(s), transactions, and pins across gateways."""

    async def open(self) -> None:
        """Connect and create the object tables if needed."""
        ...

    async def close(self) -> None:
        """Disconnect."""
        ...

    def transaction(self, *, write: bool) -> AbstractAsyncContextManager[Tx]:
        """A transaction that commits when the block ends and rolls back on an error."""
        ...

    def pinned(self, label: str) -> AbstractAsyncContextManager[None]:
        """Hold a lock named `label` for the block, outside any transaction."""
        ...


def info_from_row(row: Row) -> ObjectInfo:
    """An object's metadata from its row."""
    return ObjectInfo(
        bucket=row["bucket"],
        key=row["key"],
        size=row["size"],
        content_type=row["content_type"],
        etag=row["sha256"],
        created=row["created"],
        updated=row["updated"],
    )


def _object_values(tenant: str, info: ObjectInfo) -> tuple[Any, ...]:
    return (
        tenant,
        info.bucket,
        info.key,
        info.size,
        info.content_type,
        info.etag,
        info.created,
        info.updated,
    )


def _bucket_lock(tenant: str, bucket: str) -> str:
    return f"bucket:{tenant}/{bucket}"


def _key_lock(tenant: str, bucket: str, key: str) -> str:
    return f"key:{tenant}/{bucket}/{key}"


class SqlObjectMeta:
    """The `ObjectMeta` protocol over a dialect's `Db`."""

    def __init__(self, db: Db) -> None:
        self._db = db

    async def open(self) -> None:
        """Connect and create the tables if needed."""
        await self._db.open()

    async def close(self) -> None:
        """Disconnect."""
        await self._db.close()

    def pinned(self, ref: BlobRef) -> AbstractAsyncContextManager[None]:
        """The blob's pin, shared by every gateway on this database."""
        return self._db.pinned(f"blob:{ref.tenant}/{ref.sha256}")

    # buckets

    async def create_bucket(self, tenant: str, name: str, now: float) -> bool:
        """Create a bucket; False when it exists."""
        async with self._db.transaction(write=True) as tx:
            return await tx.run(INSERT_BUCKET, tenant, name, now) == 1

    async def list_buckets(self, tenant: str) -> list[BucketInfo]:
        """The tenant's buckets, by name."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.all(LIST_BUCKETS, tenant)
        return [BucketInfo(name=r["name"], created=r["created"]) for r in rows]

    async def has_bucket(self, tenant: str, name: str) -> bool:
        """Whether the tenant has that bucket."""
        async with self._db.transaction(write=False) as tx:
            return await tx.one(BUCKET_EXISTS, tenant, name) is not None

    async def delete_bucket(self, tenant: str, name: str) -> bool:
        """Delete an empty bucket; False when there is none; BucketNotEmpty otherwise."""
        async with self._db.transaction(write=True) as tx:
            await tx.lock(_bucket_lock(tenant, name))  # waits for puts into it to commit
            if await tx.one(BUCKET_EXISTS, tenant, name) is None:
                return False
            if await tx.one(ANY_OBJECT, tenant, name) is not None:
                raise BucketNotEmpty(name)
            await tx.run(DELETE_BUCKET, tenant, name)
            return True

    # objects

    async def commit_put(
        self, tenant: str, draft: ObjectInfo, clock: Clock
    ) -> tuple[ObjectInfo, str | None] | None:
        """Point the key at the draft's bytes: (stored info, replaced bytes' SHA-256 if
        other), or None when the bucket is gone."""
        async with self._db.transaction(write=True) as tx:
            await tx.lock(_bucket_lock(tenant, draft.bucket), shared=True)
            if await tx.one(BUCKET_EXISTS, tenant, draft.bucket) is None:
                return None
            await tx.lock(_key_lock(tenant, draft.bucket, draft.key))
            old = await tx.one(GET_OBJECT, tenant, draft.bucket, draft.key)
            now = clock()
            created = now if old is None else float(old["created"])
            info = replace(draft, created=created, updated=now)
            await tx.run(UPSERT_OBJECT, *_object_values(tenant, info))
        replaced = None if old is None or old["sha256"] == info.etag else str(old["sha256"])
        return info, replaced

    async def get_object(self, tenant: str, bucket: str, key: str) -> ObjectInfo | None:
        """An object's metadata; None when there is no such key."""
        async with self._db.transaction(write=False) as tx:
            if await tx.one(BUCKET_EXISTS, tenant, bucket) is None:
                raise NoSuchBucket(bucket)
            row = await tx.one(GET_OBJECT, tenant, bucket, key)
        return None if row is None else info_from_row(row)

    async def delete_object(
        self, tenant: str, bucket: str, key: str, clock: Clock
    ) -> tuple[ObjectInfo, float] | None:
        """Delete an object: (what was deleted, when); None when there is no such key."""
        async with self._db.transaction(write=True) as tx:
            if await tx.one(BUCKET_EXISTS, tenant, bucket) is None:
                raise NoSuchBucket(bucket)
            await tx.lock(_key_lock(tenant, bucket, key))
            row = await tx.one(GET_OBJECT, tenant, bucket, key)
            if row is None:
                return None
            await tx.run(DELETE_OBJECT, tenant, bucket, key)
            return info_from_row(row), clock()

    async def list_objects(self, tenant: str, bucket: str, keys: KeyRange) -> list[ObjectInfo]:
        """The objects whose keys are in the range, by key."""
        async with self._db.transaction(write=False) as tx:
            if await tx.one(BUCKET_EXISTS, tenant, bucket) is None:
                raise NoSuchBucket(bucket)
            rows = await tx.all(
                LIST_OBJECTS,
                tenant,
                bucket,
                keys.prefix,
                keys.start_after,
                keys.upper,
                keys.upper,
                keys.limit,
            )
        return [info_from_row(r) for r in rows]

    # bytes' references

    async def referenced(self, ref: BlobRef) -> bool:
        """Whether any object names these bytes."""
        async with self._db.transaction(write=False) as tx:
            return await tx.one(REFERENCED, ref.tenant, ref.sha256) is not None

    async def all_refs(self) -> set[BlobRef]:
        """Every blob some object names."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.all(ALL_REFS)
        return {BlobRef(r["tenant"], r["sha256"]) for r in rows}

    # migration

    async def import_bucket(self, tenant: str, info: BucketInfo) -> None:
        """Add a bucket as it was; an existing one is kept."""
        async with self._db.transaction(write=True) as tx:
            await tx.run(INSERT_BUCKET, tenant, info.name, info.created)

    async def import_object(self, tenant: str, info: ObjectInfo) -> bool:
        """Add an object as it was; False when the key is already taken."""
        async with self._db.transaction(write=True) as tx:
            await tx.lock(_key_lock(tenant, info.bucket, info.key))
            return await tx.run(IMPORT_OBJECT, *_object_values(tenant, info)) == 1
