"""The object store's rules on every backend (SQLite + directory, SQLite + bytes in the
database, PostgreSQL): shared bytes, crash sweep, and the races a pin or a re-read closes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from invoker.objects.local_blobs import LocalBlobs
from invoker.objects.model import BlobRef, Blobs, BlobSource
from invoker.objects.names import BucketNotEmpty, NoSuchBucket
from invoker.objects.service import ObjectStore
from tests.unit import objects_backends as backends
from tests.unit.objects_backends import Backend, opened, read_all

objects_backend = backends.objects_backend  # the fixture: one run per backend


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Hooked:
    """Blobs that run a hook once: after the next put stores its bytes, or before the
    next get."""

    def __init__(self, inner: Blobs) -> None:
        self.inner = inner
        self.after_put: Callable[[], Awaitable[None]] | None = None
        self.before_get: Callable[[], Awaitable[None]] | None = None

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def put(self, ref: BlobRef, data: bytes) -> None:
        await self.inner.put(ref, data)
        hook, self.after_put = self.after_put, None
        if hook is not None:
            await hook()

    async def get(self, ref: BlobRef) -> BlobSource | None:
        hook, self.before_get = self.before_get, None
        if hook is not None:
            await hook()
        return await self.inner.get(ref)

    async def delete(self, ref: BlobRef) -> None:
        await self.inner.delete(ref)

    async def orphans(self, named: Callable[[], Awaitable[set[BlobRef]]]) -> list[BlobRef]:
        return await self.inner.orphans(named)


@contextlib.asynccontextmanager
async def hooked_store(backend: Backend) -> AsyncIterator[tuple[Hooked, ObjectStore]]:
    """An open store on hooked blobs, with ann's bucket `box`."""
    found: list[Hooked] = []

    def wrap(inner: Blobs) -> Blobs:
        found.append(Hooked(inner))
        return found[0]

    async with opened(backend.make(wrap=wrap)) as store:
        await store.create_bucket("ann", "box")
        yield found[0], store


async def test_same_bytes_are_shared_within_a_tenant_and_never_across(
    objects_backend: Backend,
) -> None:
    async with opened(objects_backend.make()) as store:
        for tenant in ("ann", "bob"):
            await store.create_bucket(tenant, "box")
        same = sha(b"same")
        await store.put_object("ann", "box", "one", b"same", None)
        await store.put_object("ann", "box", "two", b"same", None)
        await store.put_object("bob", "box", "one", b"same", None)
        assert await objects_backend.stored() == {("ann", same), ("bob", same)}

        assert await store.delete_object("ann", "box", "one")
        assert await read_all(store, "ann", "box", "two") == b"same"
        assert await objects_backend.stored() == {("ann", same), ("bob", same)}
        assert await store.delete_object("ann", "box", "two")
        assert await objects_backend.stored() == {("bob", same)}
        # A replacement frees the bytes it replaced.
        await store.put_object("bob", "box", "one", b"new", "text/plain")
        assert await objects_backend.stored() == {("bob", sha(b"new"))}
        assert await read_all(store, "bob", "box", "one") == b"new"


async def test_a_delete_never_removes_bytes_a_concurrent_put_is_about_to_name(
    objects_backend: Backend,
) -> None:
    async with hooked_store(objects_backend) as (blobs, store):
        await store.put_object("ann", "box", "old", b"shared bytes", None)
        stored, go = asyncio.Event(), asyncio.Event()

        async def pause() -> None:  # the bytes are in place, the put's row not yet committed
            stored.set()
            await go.wait()

        blobs.after_put = pause
        put = asyncio.create_task(store.put_object("ann", "box", "new", b"shared bytes", None))
        await stored.wait()
        delete = asyncio.create_task(store.delete_object("ann", "box", "old"))
        await asyncio.sleep(0.3)  # the delete commits, then wants to collect the bytes
        go.set()
        await put
        assert await delete is True
        assert await read_all(store, "ann", "box", "new") == b"shared bytes"
        assert await objects_backend.stored() == {("ann", sha(b"shared bytes"))}


async def test_a_read_racing_a_replacement_gets_the_new_object_whole(
    objects_backend: Backend,
) -> None:
    async with hooked_store(objects_backend) as (blobs, store):
        await store.put_object("ann", "box", "hot", b"first", None)

        async def replace() -> None:  # after the row was read, before its bytes are opened
            await store.put_object("ann", "box", "hot", b"second", None)

        blobs.before_get = replace
        found = await store.open_object("ann", "box", "hot")
        assert found is not None
        info, source = found
        assert (await source.read(100), info.etag) == (b"second", sha(b"second"))
        await source.close()


async def test_bytes_of_a_put_into_a_bucket_deleted_meanwhile_are_collected(
    objects_backend: Backend,
) -> None:
    async with hooked_store(objects_backend) as (blobs, store):

        async def delete_bucket() -> None:
            assert await store.delete_bucket("ann", "box") is True

        blobs.after_put = delete_bucket
        with pytest.raises(NoSuchBucket):
            await store.put_object("ann", "box", "k", b"late", None)
        assert await objects_backend.stored() == set()
        assert await store.list_buckets("ann") == []


async def test_concurrent_puts_of_one_key_leave_one_object_and_no_stray_bytes(
    objects_backend: Backend,
) -> None:
    async with opened(objects_backend.make()) as store:
        await store.create_bucket("ann", "box")
        payloads = [bytes([i]) * (1000 + i) for i in range(12)]
        await asyncio.gather(*(store.put_object("ann", "box", "k", p, None) for p in payloads))
        got = await read_all(store, "ann", "box", "k")
        assert got in payloads
        page = await store.list_objects("ann", "box")
        assert [(o.key, o.etag, o.size) for o in page.objects] == [("k", sha(got), len(got))]
        assert await objects_backend.stored() == {("ann", sha(got))}


async def test_a_bucket_deleted_among_puts_never_keeps_an_object(
    objects_backend: Backend,
) -> None:
    async with opened(objects_backend.make()) as store:
        await store.create_bucket("ann", "box")
        puts = [store.put_object("ann", "box", f"k{i}", bytes([i]) * 50, None) for i in range(8)]
        *put_results, deleted = await asyncio.gather(
            *puts, store.delete_bucket("ann", "box"), return_exceptions=True
        )
        stored_keys = {r.key for r in put_results if not isinstance(r, BaseException)}
        assert all(isinstance(r, NoSuchBucket) for r in put_results if isinstance(r, BaseException))
        if deleted is True:
            assert stored_keys == set() and await store.list_buckets("ann") == []
            assert await objects_backend.stored() == set()
        else:
            assert isinstance(deleted, BucketNotEmpty)
            page = await store.list_objects("ann", "box")
            assert {o.key for o in page.objects} == stored_keys
            assert await objects_backend.stored() == {("ann", o.etag) for o in page.objects}


async def test_keys_list_in_code_point_order_with_prefixes(objects_backend: Backend) -> None:
    keys = ["a b", "a-b", "a.b", "aB", "ab", "A", "a/b", "é", "z", "\U0001f600", "a\U0010ffff"]
    async with opened(objects_backend.make()) as store:
        await store.create_bucket("ann", "box")
        for bucket in ("bo-x", "bo.x", "boxa", "bo0x"):
            await store.create_bucket("ann", bucket)
        for key in keys:
            await store.put_object("ann", "box", key, key.encode(), None)
        page = await store.list_objects("ann", "box")
        assert [o.key for o in page.objects] == sorted(keys)
        page = await store.list_objects("ann", "box", prefix="a", limit=3, start_after="a-b")
        assert [o.key for o in page.objects] == ["a.b", "a/b", "aB"] and page.truncated
        assert [b.name for b in await store.list_buckets("ann")] == sorted(
            ["box", "bo-x", "bo.x", "boxa", "bo0x"]
        )


async def test_open_sweeps_bytes_no_object_names(objects_backend: Backend) -> None:
    async with hooked_store(objects_backend) as (blobs, store):
        await store.put_object("ann", "box", "kept", b"kept", None)
        # What a crash between storing bytes and committing their row leaves.
        await blobs.put(BlobRef("ann", sha(b"orphan")), b"orphan")
        assert len(await objects_backend.stored()) == 2
    async with opened(objects_backend.make()) as store:
        assert await objects_backend.stored() == {("ann", sha(b"kept"))}
        assert await read_all(store, "ann", "box", "kept") == b"kept"


# the local directory never follows a symlink


async def test_local_blobs_refuse_a_symlinked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    data = b"secret outside the store"
    ref = BlobRef("ann", sha(data))
    (outside / ref.sha256[:2]).mkdir(parents=True)
    (outside / ref.sha256[:2] / ref.sha256).write_bytes(data)
    blobs = LocalBlobs(tmp_path / "blobs")
    await blobs.open()
    try:
        os.symlink(outside, tmp_path / "blobs" / "ann")
        with pytest.raises(OSError):
            await blobs.get(ref)
        with pytest.raises(OSError):
            await blobs.put(ref, data)
        assert await blobs.orphans(_nothing_named) == []  # the link is not walked either
    finally:
        await blobs.close()


async def test_local_blobs_replace_a_symlinked_file_without_writing_through_it(
    tmp_path: Path,
) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"do not touch")
    data = b"the object"
    ref = BlobRef("ann", sha(data))
    blobs = LocalBlobs(tmp_path / "blobs")
    await blobs.open()
    try:
        shard = tmp_path / "blobs" / "ann" / ref.sha256[:2]
        shard.mkdir(parents=True)
        os.symlink(target, shard / ref.sha256)
        with pytest.raises(OSError):
            await blobs.get(ref)  # a link where the bytes should be is not read
        await blobs.put(ref, data)
        assert target.read_bytes() == b"do not touch"
        assert not (shard / ref.sha256).is_symlink()
        source = await blobs.get(ref)
        assert source is not None and await source.read(100) == data
        await source.close()
        await blobs.delete(ref)
        assert not (shard / ref.sha256).exists() and target.exists()
    finally:
        await blobs.close()


async def _nothing_named() -> set[BlobRef]:
    return set()


async def test_a_put_cancelled_midway_changes_nothing_and_its_bytes_are_swept(
    objects_backend: Backend,
) -> None:
    async with hooked_store(objects_backend) as (blobs, store):
        stored = asyncio.Event()

        async def hang() -> None:
            stored.set()
            await asyncio.Event().wait()

        blobs.after_put = hang
        put = asyncio.create_task(store.put_object("ann", "box", "k", b"cut short", None))
        await stored.wait()
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
        assert (await store.list_objects("ann", "box")).objects == ()
        await store.put_object("ann", "box", "other", b"fine", None)  # the store still works
    async with opened(objects_backend.make()) as store:
        assert await read_all(store, "ann", "box", "other") == b"fine"
        assert await objects_backend.stored() == {("ann", sha(b"fine"))}
