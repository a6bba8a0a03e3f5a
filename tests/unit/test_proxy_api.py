"""The Nimbus API inside the function: the proxy forwards calls to the gateway's socket.

Each test starts runtimes/python/proxy.py with the host interpreter (proxy_process) on a
unix socket (as in production) or on a TCP port, and checks what the invoker relies on.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.unit.proxy_process import Proxy, running_proxy

# ------------------------------------------------- the Nimbus API inside the function


@dataclass
class ApiServer:
    """A stand-in for the gateway's API on a unix socket; remembers every request."""

    socket_path: Path
    seen: list[dict[str, Any]]


@pytest.fixture
async def api_server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    """GET answers with the method, path and Authorization it got; PUT echoes the body."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        echo = {
            "method": request.method,
            "path": request.path,
            "authorization": request.headers.get("Authorization"),
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        seen.append(echo)
        if request.method == "PUT":
            return web.Response(body=body, content_type="application/octet-stream")
        return web.json_response(echo)

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "api" / "api.sock"
    path.parent.mkdir()
    await web.UnixSite(runner, str(path)).start()
    try:
        yield ApiServer(path, seen)
    finally:
        await runner.cleanup()


@pytest.fixture(params=["unix", "tcp"])
async def api_proxy(
    request: pytest.FixtureRequest, tmp_path: Path, api_server: ApiServer
) -> AsyncIterator[Proxy]:
    """A proxy whose container has the API socket bind-mounted at $NIMBUS_API_SOCKET."""
    env = {"NIMBUS_API_SOCKET": str(api_server.socket_path)}
    async with running_proxy(tmp_path, request.param, env) as running:
        yield running


WHOAMI = """
import json, os, urllib.request

URL_AT_IMPORT = os.environ.get("NIMBUS_API_URL")

def handler(event, context):
    request = urllib.request.Request(
        os.environ["NIMBUS_API_URL"] + "/v1/whoami",
        headers={"Authorization": "Bearer " + os.environ["NIMBUS_API_TOKEN"]},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        echo = json.load(response)
    return {
        "echo": echo,
        "url_at_import": URL_AT_IMPORT,
        "url": os.environ["NIMBUS_API_URL"],
        "context_url": context.api_url,
        "context_token": context.api_token,
    }
"""


async def test_function_calls_the_api_at_nimbus_api_url_with_its_token(
    api_proxy: Proxy, api_server: ApiServer
) -> None:
    await api_proxy.init_source(WHOAMI)
    tokens = [f"tok-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"]
    for token in tokens:
        status, payload = await api_proxy.post("/run", {"value": {}, "api_token": token})
        assert status == 200, payload
        result = payload["result"]
        assert result["echo"]["path"] == "/v1/whoami"
        assert result["echo"]["authorization"] == f"Bearer {token}"
        assert result["context_token"] == token
        url = result["url"]
        host, _, port = url.removeprefix("http://").partition(":")
        assert (host, port.isdigit()) == ("127.0.0.1", True), url
        assert int(port) > 0
        # Module-level code saw the same URL, and so does the context.
        assert result["url_at_import"] == url
        assert result["context_url"] == url
    assert [s["authorization"] for s in api_server.seen] == [f"Bearer {t}" for t in tokens]


PUT_MEGABYTE = """
import hashlib, os, random, urllib.request

def handler(event):
    data = random.Random(event["seed"]).randbytes(event["size"])
    request = urllib.request.Request(
        os.environ["NIMBUS_API_URL"] + "/v1/buckets/b/objects/big.bin",
        data=data,
        method="PUT",
        headers={"Authorization": "Bearer " + os.environ["NIMBUS_API_TOKEN"]},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        back = response.read()
    return {
        "sent": hashlib.sha256(data).hexdigest(),
        "back": hashlib.sha256(back).hexdigest(),
        "back_size": len(back),
    }
"""


async def test_a_megabyte_goes_through_the_forwarder_and_back_intact(
    api_proxy: Proxy, api_server: ApiServer
) -> None:
    await api_proxy.init_source(PUT_MEGABYTE)
    size = 1024 * 1024 + 17  # not a multiple of any buffer size
    seed = uuid.uuid4().int
    expected = hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()
    status, payload = await api_proxy.post(
        "/run", {"value": {"seed": seed, "size": size}, "api_token": "t"}
    )
    assert status == 200, payload
    assert payload["result"] == {"sent": expected, "back": expected, "back_size": size}
    received = api_server.seen[-1]
    assert (received["method"], received["path"]) == ("PUT", "/v1/buckets/b/objects/big.bin")
    assert (received["size"], received["sha256"]) == (size, expected)


OVERLAPPING = """
import json, threading, urllib.request

both_inside = threading.Barrier(2, timeout=10)

def handler(event, context):
    both_inside.wait()  # each call is in the handler before either calls out
    request = urllib.request.Request(
        context.api_url + "/v1/whoami",
        headers={"Authorization": "Bearer " + context.api_token},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {"mine": context.api_token, "seen": json.load(response)["authorization"]}
"""


async def test_overlapping_calls_each_get_their_own_context_token(api_proxy: Proxy) -> None:
    await api_proxy.init_source(OVERLAPPING)
    tokens = [f"tenant-a-{uuid.uuid4().hex}", f"tenant-a-{uuid.uuid4().hex}"]
    answers = await asyncio.gather(
        *(api_proxy.post("/run", {"value": {}, "api_token": t}) for t in tokens)
    )
    for token, (status, payload) in zip(tokens, answers, strict=True):
        assert status == 200, payload
        assert payload["result"] == {"mine": token, "seen": f"Bearer {token}"}


NO_API = """
import os, sys

def handler(event, context):
    return {
        "url": os.environ.get("NIMBUS_API_URL"),
        "token": os.environ.get("NIMBUS_API_TOKEN"),
        "context_url": context.api_url,
        "context_token": context.api_token,
        "select_loaded": "select" in sys.modules,
    }
"""


@pytest.mark.parametrize("socket_kind", ["unset", "missing", "regular file"])
async def test_without_an_api_socket_nothing_is_offered(tmp_path: Path, socket_kind: str) -> None:
    env: dict[str, str] = {}
    if socket_kind == "missing":
        env["NIMBUS_API_SOCKET"] = str(tmp_path / "nowhere" / "api.sock")
    elif socket_kind == "regular file":
        (tmp_path / "api.sock").write_text("not a socket")
        env["NIMBUS_API_SOCKET"] = str(tmp_path / "api.sock")
    async with running_proxy(tmp_path, "unix", env) as proxy:
        await proxy.init_source(NO_API)
        status, payload = await proxy.post("/run", {"value": {}, "api_token": "tok"})
    assert status == 200, payload
    assert payload["result"] == {
        "url": None,
        "token": None,
        "context_url": None,
        "context_token": "tok",  # what the platform sent, though there is no API to use it on
        "select_loaded": False,  # and the proxy loaded nothing for the forwarder
    }


RAW_CALLS = """
import os, socket, time, urllib.parse

ADDRESS = None

def connect():
    return socket.create_connection(ADDRESS, timeout=10)

def read_all(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.decode("latin-1")

def call(sock, path):
    sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: api\\r\\nConnection: close\\r\\n\\r\\n".encode())
    return read_all(sock)

def handler(event):
    global ADDRESS
    url = urllib.parse.urlsplit(os.environ["NIMBUS_API_URL"])
    ADDRESS = (url.hostname, url.port)
    held = [connect() for _ in range(event["limit"])]
    extra = connect()
    refused = read_all(extra)
    extra.close()
    answered = call(held[0], "/v1/held")
    for sock in held:
        sock.close()
    # Closed connections free their slots as soon as the forwarder sees them go.
    deadline = time.monotonic() + 5
    while True:
        after = call(connect(), "/v1/after")
        if after.startswith("HTTP/1.1 200") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return {"refused": refused, "answered": answered, "after": after}
"""


async def test_forwarded_connections_are_bounded_and_extra_ones_told_why(
    tmp_path: Path, api_server: ApiServer
) -> None:
    env = {"NIMBUS_API_SOCKET": str(api_server.socket_path), "NIMBUS_API_MAX_CONNECTIONS": "3"}
    async with running_proxy(tmp_path, "unix", env) as proxy:
        await proxy.init_source(RAW_CALLS)
        status, payload = await proxy.post("/run", {"value": {"limit": 3}})
    assert status == 200, payload
    result = payload["result"]
    assert result["refused"].startswith("HTTP/1.1 503 "), result["refused"]
    assert "more than 3 concurrent" in result["refused"]
    assert result["answered"].startswith("HTTP/1.1 200 "), result["answered"]
    assert result["after"].startswith("HTTP/1.1 200 "), result["after"]
    assert [s["path"] for s in api_server.seen] == ["/v1/held", "/v1/after"]


UNREACHABLE = """
import os, urllib.error, urllib.request

def handler(event):
    try:
        urllib.request.urlopen(os.environ["NIMBUS_API_URL"] + "/v1/whoami", timeout=10)
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read().decode()}
    return {"status": 200}
"""


async def test_an_api_socket_nobody_listens_on_gives_a_502_that_says_so(tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as bound_only:
        bound_only.bind(str(dead))  # a socket file, but connecting to it is refused
        async with running_proxy(tmp_path, "unix", {"NIMBUS_API_SOCKET": str(dead)}) as proxy:
            await proxy.init_source(UNREACHABLE)
            status, payload = await proxy.post("/run", {"value": {}})
            assert status == 200, payload
            assert payload["result"]["status"] == 502
            assert "Nimbus API is unreachable" in payload["result"]["body"]
            assert proxy.process.poll() is None
