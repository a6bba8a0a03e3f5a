"""The object store's use cases: buckets and objects of every tenant, over metadata in the
store's database (`ObjectMeta`) and bytes behind `Blobs`.

Crash and race order, so that no row ever names missing bytes:
- a put pins its blob, stores the bytes (durably) and only then commits the row that names
  them; the bytes it replaced are collected after that commit;
- a delete commits the row's removal first and collects the bytes after;
- collecting pins the blob, checks that no row names it and only then removes it; a put
  of the same bytes holds the same pin from storing them to its commit, so the check and
  the removal never fall between those two.
A crash between two steps leaves at worst bytes no object names, which `open()` sweeps.
A read needs no pin: it reads the row, then opens the bytes it names; bytes collected in
between mean the row has moved on, and it reads the row again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from invoker.objects.legacy import import_legacy
from invoker.objects.model import (
    BlobRef,
    Blobs,
    BlobSource,
    BucketInfo,
    Clock,
    EventSink,
    KeyRange,
    ObjectInfo,
    ObjectMeta,
    ObjectPage,
    object_event,
)
from invoker.objects.names import (
    MAX_LIST_LIMIT,
    InvalidInput,
    NoSuchBucket,
    check_bucket_name,
    check_content_type,
    check_key,
    check_limit,
    check_prefix,
    prefix_upper_bound,
)

log = logging.getLogger("nimbus.objects")

READ_ATTEMPTS = 5


class MissingBytes(Exception):
    """An object's row names bytes that are not stored (lost outside Nimbus)."""


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data`, in hex."""
    return hashlib.sha256(data).hexdigest()


class ObjectStore:
    """Buckets and objects of every tenant; emits `object.created` / `object.deleted`.

    `legacy_dir`, when given, is a data dir whose old object store (`objects.db` and
    `objects/`) is imported once on open (`legacy.import_legacy`).
    """

    def __init__(
        self,
        meta: ObjectMeta,
        blobs: Blobs,
        *,
        max_object_bytes: int,
        on_event: EventSink | None = None,
        clock: Clock = time.time,
        legacy_dir: Path | None = None,
    ) -> None:
        self._meta = meta
        self._blobs = blobs
        self.max_object_bytes = max_object_bytes
        self._on_event = on_event
        self._clock = clock
        self._legacy_dir = legacy_dir

    async def open(self) -> None:
        """Open metadata and bytes, import an old store, sweep bytes no object names."""
        await self._meta.open()
        await self._blobs.open()
        if self._legacy_dir is not None:
            await import_legacy(self._legacy_dir, self._meta, self._blobs)
        swept = await self.sweep()
        if swept:
            log.info("removed %d stored objects' bytes that no object names", swept)

    async def close(self) -> None:
        """Close bytes and metadata."""
        await self._blobs.close()
        await self._meta.close()

    async def sweep(self) -> int:
        """Collect the bytes no object names (left by a crash); how many went."""
        orphans = await self._blobs.orphans(self._meta.all_refs)
        for ref in orphans:
            await self._collect(ref)
        return len(orphans)

    async def _collect(self, ref: BlobRef) -> None:
        async with self._meta.pinned(ref):
            if not await self._meta.referenced(ref):
                await self._blobs.delete(ref)

    async def _collect_quietly(self, ref: BlobRef) -> None:
        """Collect after a failed put: a failure here is logged (the sweep retries it), so
        that the put's own error is the one raised."""
        try:
            await self._collect(ref)
        except Exception:
            log.exception("could not remove the bytes of a failed put")

    # buckets

    async def create_bucket(self, tenant: str, name: str) -> bool:
        """Create a bucket in the tenant's namespace; False when it already exists."""
        check_bucket_name(name)
        return await self._meta.create_bucket(tenant, name, self._clock())

    async def list_buckets(self, tenant: str) -> list[BucketInfo]:
        """The tenant's buckets, by name."""
        return await self._meta.list_buckets(tenant)

    async def delete_bucket(self, tenant: str, name: str) -> bool:
        """Delete an empty bucket; False when there is none; BucketNotEmpty otherwise."""
        check_bucket_name(name)
        return await self._meta.delete_bucket(tenant, name)

    # objects

    async def put_object(
        self, tenant: str, bucket: str, key: str, data: bytes, content_type: str | None
    ) -> ObjectInfo:
        """Store `data` under `key`, replacing any object there; emits `object.created`."""
        check_bucket_name(bucket)
        check_key(key)
        content_type = check_content_type(content_type)
        if len(data) > self.max_object_bytes:
            raise InvalidInput(f"the object is over the {self.max_object_bytes} byte limit", "body")
        # Fail before storing bytes when the bucket is plainly missing; the commit checks again.
        if not await self._meta.has_bucket(tenant, bucket):
            raise NoSuchBucket(bucket)
        ref = BlobRef(tenant, await asyncio.to_thread(sha256_hex, data))
        draft = ObjectInfo(bucket, key, len(data), content_type, ref.sha256, 0.0, 0.0)
        try:
            async with self._meta.pinned(ref):
                await self._blobs.put(ref, data)
                committed = await self._meta.commit_put(tenant, draft, self._clock)
        except Exception:
            await self._collect_quietly(ref)  # no row names them unless another object does
            raise
        if committed is None:  # the bucket went meanwhile
            await self._collect_quietly(ref)
            raise NoSuchBucket(bucket)
        info, replaced = committed
        # Emitted before anything else is awaited: listeners hear puts in commit order.
        await self._emit(tenant, object_event("object.created", info, info.updated))
        if replaced is not None:
            await self._collect(BlobRef(tenant, replaced))
        return info

    async def open_object(
        self, tenant: str, bucket: str, key: str
    ) -> tuple[ObjectInfo, BlobSource] | None:
        """An object's metadata and its bytes opened for reading (the caller closes them);
        None when there is no such key."""
        check_bucket_name(bucket)
        check_key(key)
        for _ in range(READ_ATTEMPTS):
            info = await self._meta.get_object(tenant, bucket, key)
            if info is None:
                return None
            source = await self._blobs.get(BlobRef(tenant, info.etag))
            if source is not None:
                return info, source
            # Replaced or deleted since the row was read, and its bytes collected.
        raise MissingBytes(f"the bytes of {bucket}/{key} of {tenant} are not stored")

    async def delete_object(self, tenant: str, bucket: str, key: str) -> bool:
        """Delete an object; False when there is no such key. Emits `object.deleted`."""
        check_bucket_name(bucket)
        check_key(key)
        deleted = await self._meta.delete_object(tenant, bucket, key, self._clock)
        if deleted is None:
            return False
        info, now = deleted
        await self._emit(tenant, object_event("object.deleted", info, now))
        await self._collect(BlobRef(tenant, info.etag))
        return True

    async def list_objects(
        self,
        tenant: str,
        bucket: str,
        prefix: str = "",
        limit: int = MAX_LIST_LIMIT,
        start_after: str = "",
    ) -> ObjectPage:
        """Objects whose key starts with `prefix` and sorts after `start_after`, by key."""
        check_bucket_name(bucket)
        check_prefix(prefix)
        check_prefix(start_after, "start_after")
        check_limit(limit)
        # One row past the page tells whether it is truncated.
        keys = KeyRange(prefix, prefix_upper_bound(prefix), start_after, limit + 1)
        found = await self._meta.list_objects(tenant, bucket, keys)
        page = tuple(found[:limit])
        return ObjectPage(
            objects=page, next_start_after=page[-1].key if len(found) > limit else None
        )

    async def _emit(self, tenant: str, event: dict[str, Any]) -> None:
        # The object is committed whatever a listener does: its failure is logged, not raised.
        if self._on_event is None:
            return
        try:
            await self._on_event(tenant, event)
        except Exception:
            log.exception("object event listener failed on %s", event["type"])
