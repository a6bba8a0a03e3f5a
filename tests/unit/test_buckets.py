"""The built-in object store: over HTTP on a real gateway (process driver), and directly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from gateway.app import create_app
from gateway.config import MAX_OBJECT_BYTES, Config
from invoker.objects.names import (
    BucketNotEmpty,
    InvalidInput,
    check_bucket_name,
    check_key,
    prefix_upper_bound,
)
from invoker.objects.opening import BLOB_DIR, open_objects
from tests.conftest import ADMIN_KEY, Api, free_port

Events = list[tuple[str, dict[str, Any]]]


class Bucketed:
    """A running gateway with the bucket routes, and the object events it emitted."""

    def __init__(self, data_dir: Path, max_object_bytes: int) -> None:
        self.data_dir = data_dir
        self.max_object_bytes = max_object_bytes
        self.events: Events = []
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.api: Api

    async def start(self) -> None:
        async def collect(tenant: str, event: dict[str, Any]) -> None:
            self.events.append((tenant, event))

        port = free_port()
        config = Config(
            data_dir=self.data_dir,
            port=port,
            admin_key=ADMIN_KEY,
            driver="process",
            stem_cells=(),
            max_object_bytes=self.max_object_bytes,
        )
        app = create_app(config, on_object_event=collect)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.session = aiohttp.ClientSession()
        self.api = Api(f"http://127.0.0.1:{port}", self.session, ADMIN_KEY)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()
        self.session = self.runner = None

    async def raw(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, CIMultiDict[str]]:
        """One request with a raw body; returns (status, raw body, headers)."""
        assert self.session is not None
        url = URL(self.api.url + path, encoded=True)
        all_headers = {**self.api.headers(key), **(headers or {})}
        async with self.session.request(method, url, data=data, headers=all_headers) as resp:
            return resp.status, await resp.read(), CIMultiDict(resp.headers)

    def object_files(self) -> list[Path]:
        """Every object file on disk (temp files excluded)."""
        return object_files(self.data_dir)


def object_files(data_dir: Path) -> list[Path]:
    """The files holding objects' bytes (temp files excluded)."""
    root = data_dir / BLOB_DIR
    return [f for f in root.rglob("*") if f.is_file() and f.parent.name != "_tmp"]


@pytest.fixture
async def nimbus(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Bucketed]:
    """The gateway with buckets; `@pytest.mark.platform(max_object_bytes=N)` sets the limit."""
    marker = request.node.get_closest_marker("platform")
    limit = marker.kwargs.get("max_object_bytes", MAX_OBJECT_BYTES) if marker else MAX_OBJECT_BYTES
    running = Bucketed(tmp_path / "data", limit)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def error_field(body: bytes) -> Any:
    return json.loads(body)["error"].get("field")


# HTTP


async def test_bucket_lifecycle(nimbus: Bucketed) -> None:
    api = nimbus.api
    status, body, _ = await api.call("PUT", "/v1/buckets/photos")
    assert (status, body) == (201, {"name": "photos"})
    status, body, _ = await api.call("PUT", "/v1/buckets/photos")
    assert (status, body) == (200, {"name": "photos"})
    await api.call("PUT", "/v1/buckets/a-bucket.v2")
    status, body, _ = await api.call("GET", "/v1/buckets")
    assert status == 200
    assert [b["name"] for b in body["buckets"]] == ["a-bucket.v2", "photos"]

    status, body, _ = await api.call("DELETE", "/v1/buckets/photos")
    assert (status, body) == (200, {"deleted": "photos"})
    status, _, _ = await api.call("DELETE", "/v1/buckets/photos")
    assert status == 404
    status, body, _ = await api.call("GET", "/v1/buckets")
    assert [b["name"] for b in body["buckets"]] == ["a-bucket.v2"]


async def test_put_get_head_delete_keeps_bytes_and_content_type(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    data = bytes(range(256)) + random.Random(7).randbytes(300_000)
    path = "/v1/buckets/photos/objects/2024/cat%20pic.jpg"
    status, body, _ = await nimbus.raw("PUT", path, data, headers={"Content-Type": "image/jpeg"})
    assert status == 201, body
    info = json.loads(body)
    etag = hashlib.sha256(data).hexdigest()
    assert info["key"] == "2024/cat pic.jpg" and info["bucket"] == "photos"
    assert info["size"] == len(data) and info["etag"] == etag
    assert info["content_type"] == "image/jpeg"

    status, got, headers = await nimbus.raw("GET", path)
    assert status == 200 and got == data
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["ETag"] == f'"{etag}"'
    assert headers["Content-Length"] == str(len(data))

    status, got, headers = await nimbus.raw("HEAD", path)
    assert status == 200 and got == b""
    assert headers["Content-Length"] == str(len(data)) and headers["ETag"] == f'"{etag}"'

    status, got, _ = await nimbus.raw("GET", path, headers={"If-None-Match": f'"{etag}"'})
    assert status == 304 and got == b""

    # A content type with parameters is kept exactly; an empty object is an object.
    text_path = "/v1/buckets/photos/objects/notes.txt"
    ctype = "text/plain; charset=utf-8"
    status, _, _ = await nimbus.raw(
        "PUT", text_path, "héllo".encode(), headers={"Content-Type": ctype}
    )
    assert status == 201
    status, got, headers = await nimbus.raw("GET", text_path)
    assert got.decode() == "héllo" and headers["Content-Type"] == ctype
    status, body, _ = await nimbus.raw("PUT", "/v1/buckets/photos/objects/empty", b"")
    assert status == 201 and json.loads(body)["size"] == 0

    status, body, _ = await nimbus.raw("DELETE", path)
    assert status == 200 and json.loads(body) == {"deleted": "2024/cat pic.jpg", "bucket": "photos"}
    assert (await nimbus.raw("GET", path))[0] == 404
    assert (await nimbus.raw("DELETE", path))[0] == 404
    # The deleted object's file is gone; the two others remain.
    assert len(nimbus.object_files()) == 2


async def test_listing_with_prefix_and_pagination(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/docs")
    keys = [f"logs/2024-{m:02d}.txt" for m in range(1, 8)] + ["logs", "logsx/a", "readme", "é/1"]
    for key in random.Random(3).sample(keys, len(keys)):
        status, _, _ = await nimbus.raw(
            "PUT", f"/v1/buckets/docs/objects/{quote(key)}", key.encode()
        )
        assert status == 201

    status, body, _ = await nimbus.api.call("GET", "/v1/buckets/docs/objects")
    assert [o["key"] for o in body["objects"]] == sorted(keys)
    assert body["truncated"] is False and body["next_start_after"] is None

    seen: list[str] = []
    start_after = ""
    pages = 0
    while True:
        status, body, _ = await nimbus.api.call(
            "GET", f"/v1/buckets/docs/objects?prefix=logs/&limit=3&start_after={start_after}"
        )
        assert status == 200, body
        pages += 1
        page_keys = [o["key"] for o in body["objects"]]
        assert len(page_keys) <= 3
        seen += page_keys
        if not body["truncated"]:
            assert body["next_start_after"] is None
            break
        assert body["next_start_after"] == page_keys[-1]
        start_after = body["next_start_after"]
    assert seen == sorted(k for k in keys if k.startswith("logs/"))
    assert pages == 3

    status, body, _ = await nimbus.api.call("GET", "/v1/buckets/docs/objects?prefix=zzz")
    assert status == 200 and body["objects"] == []
    for bad in ("0", "1001", "ten"):
        status, body, _ = await nimbus.api.call("GET", f"/v1/buckets/docs/objects?limit={bad}")
        assert status == 400 and body["error"]["field"] == "limit"
    status, _, _ = await nimbus.api.call("GET", "/v1/buckets/nope/objects")
    assert status == 404


async def test_tenants_do_not_see_each_others_buckets(nimbus: Bucketed) -> None:
    api = nimbus.api
    key_a = await api.tenant("team-a")
    key_b = await api.tenant("team-b")
    assert (await api.call("PUT", "/v1/buckets/photos", key=key_a))[0] == 201
    path = "/v1/buckets/photos/objects/secret.txt"
    assert (await nimbus.raw("PUT", path, b"A's secret", key=key_a))[0] == 201

    status, body, _ = await api.call("GET", "/v1/buckets", key=key_b)
    assert (status, body) == (200, {"buckets": []})
    assert (await nimbus.raw("GET", path, key=key_b))[0] == 404
    assert (await nimbus.raw("HEAD", path, key=key_b))[0] == 404
    assert (await nimbus.raw("DELETE", path, key=key_b))[0] == 404
    assert (await api.call("GET", "/v1/buckets/photos/objects", key=key_b))[0] == 404
    assert (await api.call("DELETE", "/v1/buckets/photos", key=key_b))[0] == 404
    assert (await nimbus.raw("PUT", path, b"B overwrites", key=key_b))[0] == 404

    # B's own "photos" is a different bucket in B's namespace.
    assert (await api.call("PUT", "/v1/buckets/photos", key=key_b))[0] == 201
    assert (await nimbus.raw("PUT", path, b"B's own", key=key_b))[0] == 201
    assert (await nimbus.raw("GET", path, key=key_a))[1] == b"A's secret"
    assert (await nimbus.raw("GET", path, key=key_b))[1] == b"B's own"
    assert (await nimbus.raw("DELETE", path, key=key_b))[0] == 200
    assert (await nimbus.raw("GET", path, key=key_a))[1] == b"A's secret"
    assert (await api.call("DELETE", "/v1/buckets/photos", key=key_b))[0] == 200
    status, body, _ = await api.call("GET", "/v1/buckets/photos/objects", key=key_a)
    assert status == 200 and [o["key"] for o in body["objects"]] == ["secret.txt"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/buckets/ab", "bucket"),
        ("/v1/buckets/Photos", "bucket"),
        ("/v1/buckets/under_score", "bucket"),
        ("/v1/buckets/-photos", "bucket"),
        ("/v1/buckets/a..b", "bucket"),
        ("/v1/buckets/192.168.1.1", "bucket"),
        ("/v1/buckets/" + "a" * 64, "bucket"),
        ("/v1/buckets/Photos/objects/x", "bucket"),
        ("/v1/buckets/photos/objects/a/../b", "key"),
        ("/v1/buckets/photos/objects/a/%2E%2E/b", "key"),
        ("/v1/buckets/photos/objects/..", "key"),
        ("/v1/buckets/photos/objects/%2Fetc/passwd", "key"),
        ("/v1/buckets/photos/objects/nul%00byte", "key"),
        ("/v1/buckets/photos/objects/" + "k" * 1025, "key"),
        ("/v1/buckets/photos/objects/" + "%C3%A9" * 513, "key"),  # 1026 bytes of UTF-8
    ],
)
async def test_bad_names_and_keys_are_400_naming_the_field(
    nimbus: Bucketed, path: str, field: str
) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    method = "PUT" if "/objects/" in path or path.count("/") == 3 else "GET"
    status, body, _ = await nimbus.raw(method, path, b"data")
    assert status == 400, body
    assert error_field(body) == field
    if "/objects/" in path:
        for other in ("GET", "DELETE"):
            status, body, _ = await nimbus.raw(other, path)
            assert status == 400 and error_field(body) == field
    status, body, _ = await nimbus.api.call("GET", "/v1/buckets/photos/objects")
    assert body["objects"] == []
    # 1024 bytes is still a key.
    ok = "/v1/buckets/photos/objects/" + "k" * 1024
    assert (await nimbus.raw("PUT", ok, b"x"))[0] == 201


async def test_bad_content_type_is_400(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    status, body, _ = await nimbus.raw(
        "PUT", "/v1/buckets/photos/objects/x", b"1", headers={"Content-Type": "t/" + "x" * 300}
    )
    assert status == 400 and error_field(body) == "content_type"


async def test_put_into_missing_bucket_is_404(nimbus: Bucketed) -> None:
    status, body, _ = await nimbus.raw("PUT", "/v1/buckets/nowhere/objects/x", b"1")
    assert status == 404 and b"nowhere" in body
    assert (await nimbus.raw("GET", "/v1/buckets/nowhere/objects/x"))[0] == 404
    assert nimbus.object_files() == []


@pytest.mark.platform(max_object_bytes=1000)
async def test_oversized_object_is_400_body_and_nothing_is_stored(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    path = "/v1/buckets/photos/objects/big"
    status, body, _ = await nimbus.raw("PUT", path, b"x" * 1001)
    assert status == 400 and error_field(body) == "body"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the read itself stops
        for _ in range(10):
            yield b"y" * 400

    status, body, _ = await nimbus.raw("PUT", path, chunked())
    assert status == 400 and error_field(body) == "body"
    assert (await nimbus.raw("GET", path))[0] == 404
    assert nimbus.object_files() == []
    assert nimbus.events == []
    # Exactly at the limit is fine.
    assert (await nimbus.raw("PUT", path, b"x" * 1000))[0] == 201


async def test_default_limit_is_32_mib(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    # A plain socket that sends the whole body and closes: aiohttp's client stops sending
    # after the early 400 and keeps the connection, which holds the server's shutdown 10 s.
    size = 32 * 2**20 + 1
    reader, writer = await asyncio.open_connection("127.0.0.1", nimbus.api.url.rsplit(":", 1)[1])
    writer.write(
        b"PUT /v1/buckets/photos/objects/big HTTP/1.1\r\nHost: nimbus\r\n"
        + f"Authorization: Bearer {ADMIN_KEY}\r\nContent-Length: {size}\r\n".encode()
        + b"Connection: close\r\n\r\n"
    )
    writer.write(b"\0" * size)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert error_field(body) == "body"
    assert nimbus.object_files() == []
    # One byte less is stored.
    status, _, _ = await nimbus.raw("PUT", "/v1/buckets/photos/objects/big", b"\0" * (size - 1))
    assert status == 201


async def test_deleting_a_bucket_with_objects_is_409(nimbus: Bucketed) -> None:
    await nimbus.api.call("PUT", "/v1/buckets/photos")
    await nimbus.raw("PUT", "/v1/buckets/photos/objects/a", b"1")
    status, body, _ = await nimbus.api.call("DELETE", "/v1/buckets/photos")
    assert status == 409 and "not empty" in body["error"]["message"]
    assert (await nimbus.raw("GET", "/v1/buckets/photos/objects/a"))[1] == b"1"
    await nimbus.raw("DELETE", "/v1/buckets/photos/objects/a")
    assert (await nimbus.api.call("DELETE", "/v1/buckets/photos"))[0] == 200


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


# validation and the listing bound (pure)


@pytest.mark.parametrize("name", ["abc", "photos", "my-bucket.v2", "a" * 63, "1-2-3", "a.b.c"])
def test_good_bucket_names(name: str) -> None:
    assert check_bucket_name(name) == name


@pytest.mark.parametrize(
    "name", ["ab", "a" * 64, "Abc", "a_b", "-ab", "ab-", ".ab", "a..b", "a.-b", "10.0.0.1", "a b"]
)
def test_bad_bucket_names(name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_bucket_name(name)
    assert exc.value.field == "bucket"


@pytest.mark.parametrize("key", ["a", "a/b/c.jpg", "..a", "a..", "a/.../b", "é" * 512, "k" * 1024])
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "/a", "..", "a/..", "../a", "a/../b", "a\x00b", "k" * 1025, "é" * 513, "\ud800"]
)
def test_bad_keys(key: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_key(key)
    assert exc.value.field == "key"


EDGE_CHARS = st.sampled_from(["a", "z", "\x00", "\x7f", "\ud7ff", "\ue000", "\uffff", "\U0010ffff"])
KEYS = st.text(alphabet=st.one_of(EDGE_CHARS, st.characters(exclude_categories=["Cs"])), max_size=6)


@given(prefix=KEYS, key=KEYS)
@example(prefix="a\ud7ff", key="a\ud7ff")
@example(prefix="a\U0010ffff", key="a\U0010ffff\U0010ffff")
@example(prefix="\U0010ffff", key="\U0010ffff")
def test_prefix_bound_selects_exactly_the_keys_with_the_prefix(prefix: str, key: str) -> None:
    # SQLite compares keys as UTF-8 bytes: the bound must hold in that order.
    upper = prefix_upper_bound(prefix)
    in_range = key.encode() >= prefix.encode() and (upper is None or key.encode() < upper.encode())
    assert in_range == key.startswith(prefix)
