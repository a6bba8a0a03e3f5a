"""The built-in object store keeps its objects whole: events in order, restarts,
racing writers and readers, the startup sweep, and failing listeners.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import MAX_OBJECT_BYTES
from invoker.objects.names import BucketNotEmpty, InvalidInput
from invoker.objects.opening import BLOB_DIR, open_objects
from tests.unit import buckets_platform
from tests.unit.buckets_platform import Bucketed, object_files

nimbus = buckets_platform.nimbus


async def test_events_follow_put_replace_delete_in_order(nimbus: Bucketed) -> None:
    api = nimbus.api
    key_a = await api.tenant("team-a")
    await api.call("PUT", "/v1/buckets/photos", key=key_a)
    path = "/v1/buckets/photos/objects/in/cat.png"
    first, second = b"\x89PNG first", b"\x89PNG second, longer"
    await nimbus.raw("PUT", path, first, key=key_a, headers={"Content-Type": "image/png"})
    await nimbus.raw("PUT", path, second, key=key_a, headers={"Content-Type": "image/webp"})
    await nimbus.raw("DELETE", path, key=key_a)
    await nimbus.raw("DELETE", path, key=key_a)  # nothing there: no event

    assert [tenant for tenant, _ in nimbus.events] == ["team-a"] * 3
    events = [event for _, event in nimbus.events]
    assert [e["type"] for e in events] == ["object.created", "object.created", "object.deleted"]
    expected = [
        (first, "image/png"),
        (second, "image/webp"),
        (second, "image/webp"),  # a delete describes what was deleted
    ]
    for event, (data, ctype) in zip(events, expected, strict=True):
        assert event["bucket"] == "photos" and event["key"] == "in/cat.png"
        assert event["size"] == len(data) and event["content_type"] == ctype
        assert event["etag"] == hashlib.sha256(data).hexdigest()
    times = [e["time"] for e in events]
    assert times == sorted(times) and times[0] > 1.6e9


async def test_objects_survive_a_restart(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    data = os.urandom(100_000)
    await nimbus.raw("PUT", "/v1/buckets/photos/objects/keep.bin", data)
    await nimbus.stop()
    await nimbus.start()
    status, got, headers = await nimbus.raw("GET", "/v1/buckets/photos/objects/keep.bin")
    assert status == 200 and got == data
    assert headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    status, body, _ = await nimbus.api.call("GET", "/v1/buckets")
    assert [b["name"] for b in body["buckets"]] == ["photos"]


async def test_concurrent_puts_of_one_key_end_with_one_consistent_object(
    nimbus: Bucketed,
) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    path = "/v1/buckets/photos/objects/race"
    payloads = [bytes([i]) * (50_000 + i * 1000) for i in range(16)]
    results = await asyncio.gather(*(nimbus.raw("PUT", path, p) for p in payloads))
    assert [status for status, _, _ in results] == [201] * 16

    status, got, headers = await nimbus.raw("GET", path)
    assert status == 200 and got in payloads
    etag = hashlib.sha256(got).hexdigest()
    assert headers["ETag"] == f'"{etag}"' and headers["Content-Length"] == str(len(got))
    # Every replaced file is gone; the last event describes the object that won.
    assert len(nimbus.object_files()) == 1
    events = [event for _, event in nimbus.events]
    assert len(events) == 16 and events[-1]["etag"] == etag
    status, body, _ = await nimbus.api.call("GET", "/v1/buckets/photos/objects")
    assert [(o["key"], o["etag"]) for o in body["objects"]] == [("race", etag)]


async def test_reads_racing_replaces_always_get_a_whole_object(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    path = "/v1/buckets/photos/objects/hot"
    payloads = [bytes([i]) * 200_000 for i in range(10)]
    await nimbus.raw("PUT", path, payloads[0])

    async def reader() -> list[tuple[int, bytes, str]]:
        seen = []
        for _ in range(20):
            status, got, headers = await nimbus.raw("GET", path)
            seen.append((status, got, headers.get("ETag", "")))
        return seen

    writes = asyncio.gather(*(nimbus.raw("PUT", path, p) for p in payloads[1:]))
    reads, _ = await asyncio.gather(reader(), writes)
    for status, got, etag in reads:
        assert status == 200 and got in payloads
        assert etag == f'"{hashlib.sha256(got).hexdigest()}"'


# the store directly


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


async def test_startup_sweep_removes_orphans_and_keeps_objects(data_dir: Path) -> None:
    store = open_objects(None, data_dir, max_object_bytes=MAX_OBJECT_BYTES)
    await store.open()
    await store.create_bucket("t", "photos")
    await store.put_object("t", "photos", "kept", b"kept bytes", "text/plain")
    await store.close()
    [kept] = object_files(data_dir)

    # What a crash can leave: a half-written temp file, and bytes whose row never committed.
    (data_dir / BLOB_DIR / "_tmp" / "dead.part").write_bytes(b"half")
    orphan = hashlib.sha256(b"orphan").hexdigest()
    shard = data_dir / BLOB_DIR / "t" / orphan[:2]
    shard.mkdir(exist_ok=True)
    (shard / orphan).write_bytes(b"orphan")

    store = open_objects(None, data_dir, max_object_bytes=MAX_OBJECT_BYTES)
    await store.open()
    try:
        opened = await store.open_object("t", "photos", "kept")
        assert opened is not None
        info, source = opened
        assert await source.read(100) == b"kept bytes" and info.content_type == "text/plain"
        await source.close()
        leftovers = sorted(p for p in (data_dir / BLOB_DIR).rglob("*") if p.is_file())
        assert leftovers == [kept]
    finally:
        await store.close()


async def test_store_refuses_bad_input_and_non_empty_delete(data_dir: Path) -> None:
    store = open_objects(None, data_dir, max_object_bytes=10)
    await store.open()
    try:
        assert await store.create_bucket("t", "box") is True
        assert await store.create_bucket("t", "box") is False
        with pytest.raises(InvalidInput) as exc:
            await store.put_object("t", "box", "k", b"x" * 11, None)
        assert exc.value.field == "body"
        info = await store.put_object("t", "box", "k", b"x" * 10, None)
        assert info.content_type == "application/octet-stream"
        with pytest.raises(BucketNotEmpty):
            await store.delete_bucket("t", "box")
        assert await store.delete_object("t", "box", "k") is True
        assert await store.delete_bucket("t", "box") is True
        assert await store.delete_bucket("t", "box") is False
    finally:
        await store.close()


async def test_a_failing_listener_does_not_undo_the_put(data_dir: Path) -> None:
    async def broken(tenant: str, event: dict[str, Any]) -> None:
        raise RuntimeError("listener down")

    store = open_objects(None, data_dir, max_object_bytes=10, on_event=broken, clock=lambda: 1234.5)
    await store.open()
    try:
        await store.create_bucket("t", "box")
        info = await store.put_object("t", "box", "k", b"v", "text/plain")
        assert (info.created, info.updated) == (1234.5, 1234.5)
        opened = await store.open_object("t", "box", "k")
        assert opened is not None
        await opened[1].close()
    finally:
        await store.close()
