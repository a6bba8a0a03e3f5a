"""The built-in object store over HTTP on a real gateway (process driver): buckets and
objects, listing, tenants, and what is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from tests.conftest import ADMIN_KEY
from tests.unit import buckets_platform
from tests.unit.buckets_platform import Bucketed, error_field

nimbus = buckets_platform.nimbus


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
