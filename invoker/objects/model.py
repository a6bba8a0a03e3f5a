"""The object store's values and seams: what a bucket and an object are, and the three
parts an object store is made of (metadata, bytes, pins).

- `ObjectMeta`: buckets and object metadata, in the configured store's database;
- `Blobs`: object bytes by `BlobRef` (the tenant and the SHA-256 of the bytes), in a local
  directory (`local_blobs`) or in the database itself (`db_blobs`);
- `Pins`: a lock per `BlobRef`, across every gateway that shares the store, so that bytes
  are never removed while a put is about to name them (see `service`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]
Clock = Callable[[], float]

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Tenant names (gateway/auth.py TENANT_NAME) are a subset: checked again here because a
# blob's tenant becomes a directory name.
TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class BucketInfo:
    """A bucket of one tenant."""

    name: str
    created: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created}


@dataclass(frozen=True)
class ObjectInfo:
    """An object's metadata; `etag` is the SHA-256 of its bytes, in hex."""

    bucket: str
    key: str
    size: int
    content_type: str
    etag: str
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "content_type": self.content_type,
            "etag": self.etag,
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class ObjectPage:
    """One page of a listing; `next_start_after` is set when more keys follow."""

    objects: tuple[ObjectInfo, ...]
    next_start_after: str | None

    @property
    def truncated(self) -> bool:
        return self.next_start_after is not None


@dataclass(frozen=True)
class KeyRange:
    """Up to `limit` keys with `prefix <= key < upper` (no bound when None) and
    `key > start_after`."""

    prefix: str
    upper: str | None
    start_after: str
    limit: int


@dataclass(frozen=True)
class BlobRef:
    """Where an object's bytes are: its tenant's and the SHA-256 of the bytes.

    Bytes are addressed by their hash, so metadata and bytes cannot disagree: the row names
    exactly the bytes it was written with. The tenant is part of the address so that no
    tenant shares bytes with another (a put that finds its bytes already stored must not
    tell one tenant what another uploaded).
    """

    tenant: str
    sha256: str

    def __post_init__(self) -> None:
        if not TENANT.fullmatch(self.tenant) or not SHA256_HEX.fullmatch(self.sha256):
            raise ValueError(f"not a blob reference: {self.tenant!r}, {self.sha256!r}")


def object_event(kind: str, info: ObjectInfo, now: float) -> dict[str, Any]:
    """The event a put (`object.created`) or delete (`object.deleted`) of `info` emits."""
    return {
        "type": kind,
        "bucket": info.bucket,
        "key": info.key,
        "size": info.size,
        "content_type": info.content_type,
        "etag": info.etag,
        "time": now,
    }


class BlobSource(Protocol):
    """An object's bytes opened for reading; the reader closes it."""

    async def read(self, size: int) -> bytes:
        """Up to `size` more bytes; b"" at the end."""
        ...

    async def close(self) -> None:
        """Release what the source holds (a file, a buffer)."""
        ...


async def chunks(source: BlobSource, size: int) -> AsyncIterator[bytes]:
    """The bytes of `source`, `size` at a time."""
    while chunk := await source.read(size):
        yield chunk


class Blobs(Protocol):
    """Object bytes by reference. `put` is idempotent and durable when it returns."""

    async def open(self) -> None:
        """Get ready (create directories or tables, remove half-written leftovers)."""
        ...

    async def close(self) -> None:
        """Release threads and handles."""
        ...

    async def put(self, ref: BlobRef, data: bytes) -> None:
        """Store `data` (whose SHA-256 is `ref.sha256`) unless it is already there."""
        ...

    async def get(self, ref: BlobRef) -> BlobSource | None:
        """The bytes, opened; None when they are not (or no longer) stored."""
        ...

    async def delete(self, ref: BlobRef) -> None:
        """Remove the bytes; nothing when they are not there."""
        ...

    async def orphans(self, named: Callable[[], Awaitable[set[BlobRef]]]) -> list[BlobRef]:
        """Stored bytes that no object names (as `named` says), to sweep after a crash."""
        ...


class Pins(Protocol):
    """One lock per blob, held by a put from storing the bytes until its row commits, and
    by a collection from checking that no row names the bytes until they are gone."""

    def pinned(self, ref: BlobRef) -> AbstractAsyncContextManager[None]:
        """Hold the blob's lock for the `async with` block."""
        ...


class ObjectMeta(Pins, Protocol):
    """Buckets and object metadata, in the store's database, with the pins that go with it.

    Errors: `NoSuchBucket` where a bucket is needed and missing, `BucketNotEmpty` when a
    bucket with objects is deleted.
    """

    async def open(self) -> None:
        """Connect and create the tables if needed."""
        ...

    async def close(self) -> None:
        """Disconnect."""
        ...

    async def create_bucket(self, tenant: str, name: str, now: float) -> bool:
        """Create a bucket; False when it exists."""
        ...

    async def list_buckets(self, tenant: str) -> list[BucketInfo]:
        """The tenant's buckets, by name."""
        ...

    async def has_bucket(self, tenant: str, name: str) -> bool:
        """Whether the tenant has that bucket."""
        ...

    async def delete_bucket(self, tenant: str, name: str) -> bool:
        """Delete an empty bucket; False when there is none."""
        ...

    async def commit_put(
        self, tenant: str, draft: ObjectInfo, clock: Clock
    ) -> tuple[ObjectInfo, str | None] | None:
        """Point the key at the draft's bytes: (the stored info, the SHA-256 of the bytes it
        replaced, if other), or None when the bucket is gone. Times come from `clock`, read
        in the transaction so that they follow the order of the commits."""
        ...

    async def get_object(self, tenant: str, bucket: str, key: str) -> ObjectInfo | None:
        """An object's metadata; None when there is no such key."""
        ...

    async def delete_object(
        self, tenant: str, bucket: str, key: str, clock: Clock
    ) -> tuple[ObjectInfo, float] | None:
        """Delete an object: (what was deleted, when); None when there is no such key."""
        ...

    async def list_objects(self, tenant: str, bucket: str, keys: KeyRange) -> list[ObjectInfo]:
        """The objects whose keys are in the range, by key."""
        ...

    async def referenced(self, ref: BlobRef) -> bool:
        """Whether any object names these bytes."""
        ...

    async def all_refs(self) -> set[BlobRef]:
        """Every blob some object names."""
        ...

    async def import_bucket(self, tenant: str, info: BucketInfo) -> None:
        """Add a bucket as it was (migration); an existing one is kept."""
        ...

    async def import_object(self, tenant: str, info: ObjectInfo) -> bool:
        """Add an object as it was (migration); False when the key is already taken."""
        ...
