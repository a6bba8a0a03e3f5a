"""Hostile HTTP input against a live gateway: never a 500, always the JSON error shape.

Unknown routes (404) and methods (405 with Allow), JSON that is too deep or not JSON
(NaN, Infinity, 1e999999, non-UTF-8) on every JSON endpoint, fields of the wrong type or
unknown, unknown query values, non-ASCII keys, bodies over a route's cap (declared or
chunked), slow headers and slow bodies.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.openapi_routes import ROUTES
from gateway.requests import SMALL_BODY_BYTES
from gateway.server import HEADER_TIMEOUT_S
from tests.conftest import ADMIN_KEY, Api

Answer = tuple[int, dict[str, str], Any]
ECHO = "def handler(event):\n    return {'size': len(str(event))}\n"


def port_of(api: Api) -> int:
    return int(api.url.rsplit(":", 1)[1])


async def raw_request(api: Api, head: bytes, body: bytes = b"", wait: float = 10) -> Answer:
    """Send bytes on a fresh connection; the first response, read as soon as it is whole
    (the server may keep reading a refused body for a while before it closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(api))
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(wait):
            raw_head = await reader.readuntil(b"\r\n\r\n")
            lines = raw_head.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            payload = await reader.readexactly(int(headers.get("Content-Length", "0")))
    finally:
        writer.close()
    return int(lines[0].split()[1]), headers, json.loads(payload) if payload else None


def assert_error(status: int, payload: Any, expected: int, field: str | None = None) -> None:
    assert status == expected, payload
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
    if field is not None:
        assert payload["error"]["field"] == field, payload


# --- routes and methods ------------------------------------------------------------------


async def test_unknown_routes_are_404_in_the_json_shape_key_or_no_key(api: Api) -> None:
    for method, path in [
        ("GET", "/openapi.json"),
        ("GET", "/nope"),
        ("POST", "/v1/functions/a/b/c"),
        ("DELETE", "/v1/tenants/x/y/z"),
        ("GET", "/v1/"),
    ]:
        for key in (ADMIN_KEY, None):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            async with api.session.request(method, api.url + path, headers=headers) as resp:
                assert resp.content_type == "application/json", (method, path)
                assert_error(resp.status, await resp.json(), 404)
    status, headers, payload = await raw_request(
        api, b"OPTIONS * HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n"
    )
    assert_error(status, payload, 404)


async def test_wrong_methods_are_405_with_allow_in_the_json_shape(api: Api) -> None:
    for method, path, allowed in [
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("PATCH", "/v1/functions/f", {"GET", "HEAD", "PUT", "DELETE"}),
        ("DELETE", "/v1/openapi.json", {"GET", "HEAD"}),
        ("PUT", "/v1/functions/f/invoke", {"POST"}),
    ]:
        async with api.session.request(method, api.url + path) as resp:  # no key needed
            assert_error(resp.status, await resp.json(), 405)
            assert set(resp.headers["Allow"].split(",")) == allowed, (method, path)


async def test_the_openapi_document_is_served_without_a_key(api: Api) -> None:
    async with api.session.get(api.url + "/v1/openapi.json") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert "post" in doc["paths"]["/v1/functions/{name}/invoke"]


# --- JSON bodies ---------------------------------------------------------------------------

HOSTILE_JSON = {
    "deep": b"[" * 10_000 + b"]" * 10_000,
    "deep-object": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "nan": b'{"x": NaN}',
    "infinity": b'{"x": Infinity}',
    "minus-infinity": b'{"x": -Infinity}',
    "overflow": b'{"x": 1e999999}',
    "not-utf8": b'{"x": "\xff\xfe"}',
    "lone-surrogate": b'{"x": "\\ud800"}',
}


async def _json_routes(api: Api) -> dict[tuple[str, str], str]:
    """Every route with a JSON body, as a URL with real names filled in."""
    await api.deploy("f", ECHO)
    status, trigger, _ = await api.call("PUT", "/v1/triggers/t", {"type": "http", "webhook": True})
    assert status == 201, trigger
    await api.tenant("acme")
    names = {
        "/v1/functions/": "f",
        "/v1/triggers/": "t",
        "/v1/rules/": "r",
        "/v1/tenants/": "acme",
    }
    urls = {}
    for (method, path), route in ROUTES.items():
        if route.body is None or "application/json" not in route.body:
            continue
        url = path.replace("{token}", trigger["webhook_url"].rsplit("/", 1)[1])
        for prefix, name in names.items():
            if url.startswith(prefix):
                url = url.replace("{name}", name)
        url = url.replace("{alias}", "prod")
        url = url.replace("{id}", "node-x").replace("{cid}", "c")  # bodies are read first
        urls[(method, path)] = url
    assert "{" not in "".join(urls.values()), urls
    return urls


async def test_every_json_endpoint_refuses_hostile_json_with_400_body(api: Api) -> None:
    urls = await _json_routes(api)
    assert len(urls) >= 8  # functions, invoke, tenants, limits, triggers, fire, hooks, rules, nodes
    for (method, _), url in urls.items():
        for name, raw in HOSTILE_JSON.items():
            status, payload, _ = await api.call(method, url, data=raw)
            assert status == 400 and payload["error"]["field"] == "body", (url, name, payload)
    # Nothing was stored or run.
    assert (await api.call("GET", "/v1/rules"))[1] == {"rules": []}
    assert (await api.call("GET", "/v1/activations"))[1] == {"activations": []}
    assert [f["name"] for f in (await api.call("GET", "/v1/functions"))[1]["functions"]] == ["f"]


@pytest.mark.parametrize("runtime", [[], {}, ["python:3.11"], 3, None, True])
async def test_a_runtime_of_the_wrong_type_is_400(api: Api, runtime: Any) -> None:
    body = {"runtime": runtime, "handler": "main.handler", "code": {"source": ECHO}}
    status, payload, _ = await api.call("PUT", "/v1/functions/f", body)
    assert_error(status, payload, 400, "runtime")
    assert (await api.call("GET", "/v1/functions/f"))[0] == 404


async def test_unknown_fields_are_400_naming_the_field(api: Api) -> None:
    status, payload, _ = await api.call("POST", "/v1/tenants", {"name": "acme", "admin": True})
    assert_error(status, payload, 400, "admin")
    assert (await api.call("POST", "/v1/tenants", {"name": "acme"}))[0] == 201  # not made before
    status, payload, _ = await api.call("POST", "/v1/nodes", {"flavor": "small", "count": 3})
    assert_error(status, payload, 400, "count")
    body = {"handler": "main.handler", "code": {"source": ECHO, "sha": "x"}}
    status, payload, _ = await api.call("PUT", "/v1/functions/f", body)
    assert_error(status, payload, 400, "code.sha")
    rule = {"trigger": "t", "function": "f", "priority": 1}
    assert_error(*(await api.call("PUT", "/v1/rules/r", rule))[:2], 400, "priority")


async def test_unknown_query_values_and_parameters_are_400_naming_them(api: Api) -> None:
    for path, field in [
        ("/v1/billing?group_by=week", "group_by"),
        ("/v1/billing?format=xml", "format"),
        ("/v1/admin/billing?group_by=tenant", "group_by"),
        ("/v1/billing?format=csv&colour=red", "colour"),
        ("/v1/functions?limit=3", "limit"),
        ("/v1/activations?function=f&sort=desc", "sort"),
    ]:
        status, payload, _ = await api.call("GET", path)
        assert_error(status, payload, 400, field)
    # What the docs name still works.
    assert (await api.call("GET", "/v1/billing?group_by=day&format=json"))[0] == 200
    async with api.session.get(api.url + "/v1/billing?format=csv", headers=api.headers()) as r:
        assert r.status == 200 and r.content_type == "text/csv"


@pytest.mark.parametrize(
    "value",
    ["Bearer nmb_\xc3\xa9".encode("latin-1"), b"Bearer nmb_\xe9", b"Bearer \xff\xfex"],
)
async def test_a_non_ascii_bearer_key_is_401(api: Api, value: bytes) -> None:
    for path in (b"/v1/functions", b"/v1/nope"):
        head = b"GET " + path + b" HTTP/1.1\r\nHost: n\r\nConnection: close\r\n"
        answer = await raw_request(api, head + b"Authorization: " + value + b"\r\n\r\n")
        status, _, payload = answer
        if path == b"/v1/nope":
            assert_error(status, payload, 404)  # routing comes first, key or no key
        else:
            assert_error(status, payload, 401)


# --- body sizes ------------------------------------------------------------------------------


async def test_a_content_length_over_the_cap_is_refused_before_the_body(api: Api) -> None:
    await api.deploy("f", ECHO)
    for path, declared in [
        (b"/v1/tenants", SMALL_BODY_BYTES + 1),
        (b"/v1/functions/f/invoke", 6 * 2**20 + 1),
        (b"/v1/triggers/t/fire", 6 * 2**20 + 1),
    ]:
        head = (
            b"POST " + path + b" HTTP/1.1\r\nHost: n\r\nConnection: close\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n"
            b"Content-Length: " + str(declared).encode() + b"\r\n\r\n"
        )
        started = time.monotonic()
        status, _, payload = await raw_request(api, head, wait=5)  # no body sent at all
        assert_error(status, payload, 400, "body")
        assert time.monotonic() - started < 3
    # The caps are per route: a 2 MiB event is over the small cap but fine for invoke.
    status, payload, _ = await api.invoke("f", {"pad": "x" * (2 * 2**20)})
    assert status == 200 and payload["size"] > 2 * 2**20, payload


async def _chunked(total: int, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"pad": "'
    sent = 0
    while sent < total:
        yield b"x" * piece
        sent += piece
    yield b'"}'


async def test_a_chunked_body_over_the_cap_is_refused(api: Api) -> None:
    await api.deploy("f", ECHO)
    await api.call("PUT", "/v1/triggers/t", {"type": "http"})
    for path, size in [
        ("/v1/tenants", SMALL_BODY_BYTES + 10),
        ("/v1/functions/f/invoke", 7 * 2**20),
        ("/v1/triggers/t/fire", 7 * 2**20),
        ("/v1/rules/r", SMALL_BODY_BYTES + 10),
    ]:
        method = "PUT" if path.startswith("/v1/rules") else "POST"
        async with api.session.request(
            method, api.url + path, headers=api.headers(), data=_chunked(size)
        ) as resp:
            assert "Content-Length" not in resp.request_info.headers
            assert_error(resp.status, await resp.json(), 400, "body")
    assert (await api.call("GET", "/v1/activations"))[1] == {"activations": []}


# --- slow clients ----------------------------------------------------------------------------


async def test_slow_header_connections_are_closed(api: Api) -> None:
    async def slowloris() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(api))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: n\r\nX-Slow: ")
        started = time.monotonic()
        try:
            while not reader.at_eof():
                writer.write(b"a")  # a byte a second: activity does not buy more time
                try:
                    await writer.drain()
                    await asyncio.wait_for(reader.read(1024), 1.0)
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
            return time.monotonic() - started
        finally:
            writer.close()

    tasks = [asyncio.create_task(slowloris()) for _ in range(200)]
    await asyncio.sleep(1)
    started = time.monotonic()
    assert (await api.call("GET", "/healthz"))[0] == 200  # the gateway serves meanwhile
    assert time.monotonic() - started < 1
    held = await asyncio.wait_for(asyncio.gather(*tasks), HEADER_TIMEOUT_S + 10)
    assert max(held) < HEADER_TIMEOUT_S + 2.5, max(held)
    assert (await api.call("GET", "/healthz"))[0] == 200


async def test_a_body_that_never_arrives_times_out_with_408(api: Api) -> None:
    head = (
        b"POST /v1/tenants HTTP/1.1\r\nHost: n\r\nConnection: close\r\n"
        b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    status, _, payload = await raw_request(api, head, b'{"name": ', wait=30)
    assert_error(status, payload, 408, "body")
    assert time.monotonic() - started < 20


async def test_compressed_bodies_are_capped_decompressed_and_bad_ones_are_400(api: Api) -> None:
    bomb = gzip.compress(b'{"name": "' + b"a" * (8 * SMALL_BODY_BYTES) + b'"}')
    assert len(bomb) < SMALL_BODY_BYTES // 10  # small on the wire, 8 MiB inflated
    for body in (bomb, b"this is not gzip"):
        head = (
            b"POST /v1/tenants HTTP/1.1\r\nHost: n\r\nConnection: close\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n"
            b"Content-Encoding: gzip\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        status, _, payload = await raw_request(api, head, body)
        assert_error(status, payload, 400, "body")
    assert (await api.call("POST", "/v1/tenants", {"name": "a"}))[0] == 201


async def test_odd_shapes_inside_valid_json_are_400_or_ignored_never_500(api: Api) -> None:
    schedule = {"type": "schedule", "cron": "* * * * *"}
    for timezone in ("America", "a" * 300, "../etc", "\x00"):
        status, payload, _ = await api.call(
            "PUT", "/v1/triggers/s", {**schedule, "timezone": timezone}
        )
        assert_error(status, payload, 400, "timezone")
    status, trigger, _ = await api.call("PUT", "/v1/triggers/t", {"type": "http", "webhook": True})
    assert status == 201
    hook = trigger["webhook_url"]
    for records in (
        [{"s3": {"bucket": [1], "object": {"key": "k"}}}],
        [{"s3": {"bucket": {"name": "b"}, "object": "k"}}],
        [{"s3": {"bucket": "b", "object": ["k"]}}],
        [None, 1, "x"],
    ):
        async with api.session.post(api.url + hook, json={"Records": records}) as resp:
            assert resp.status == 202 and (await resp.json())["activation_ids"] == []
    status, payload, _ = await api.call("PUT", "/v1/buckets/abcd%0A")
    assert_error(status, payload, 400, "bucket")
    status, payload, _ = await api.call("GET", "/v1/functions/f%0A")
    assert_error(status, payload, 400, "name")
