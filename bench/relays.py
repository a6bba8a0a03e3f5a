"""The baselines of bench/invoke_latency.py: relays that do nothing but pass a call on.

Each relay runs in its own process (as the gateway runs in its own), takes `POST /invoke`
on 127.0.0.1 and hands the body to one warm container's /run over its unix socket:

- `relay`, the bare aiohttp relay: aiohttp's server and an aiohttp client session, on
  asyncio's own loop. The issue's yardstick (the gateway's CPU per call is held to it).
- `lean`, the lean relay: aiohttp's server and Nimbus's own runtime client, on uvloop as
  `nimbus serve` runs: the gateway's stack with none of its work (auth, pool, keep-alive,
  metering, metrics, records).
- `raw`, the raw relay: an asyncio protocol parsing with httptools and Nimbus's runtime
  client, on uvloop: the least a Python relay can do per call, with no web framework.

Two more, only with `bench/invoke_latency.py --alternatives` (they need `pip install
uvicorn starlette`, which Nimbus does not depend on): the servers the public API could
move to instead of aiohttp's, each with Nimbus's runtime client on uvloop:

- `asgi`: uvicorn (its httptools protocol) and a bare ASGI callable: no framework at all;
- `starlette`: uvicorn and a Starlette app with the one route: a framework that could
  carry the API's routes and middlewares.

    python bench/relays.py relay|lean|raw|asgi|starlette SOCKET PORT
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import httptools
import uvloop
from aiohttp import web
from common import free_port

from invoker.runtime_client import RuntimeClient

Forward = Callable[[dict[str, Any]], Awaitable[Any]]
KINDS = ("relay", "lean", "raw")
ALTERNATIVES = ("asgi", "starlette")


def run_payload(body: bytes) -> dict[str, Any]:
    """The /run payload a relay sends for one request body."""
    return {
        "value": json.loads(body),
        "activation_id": "relay",
        "deadline": int((time.time() + 30) * 1000),
    }


async def serve_aiohttp(port: int, forward: Forward) -> None:
    """aiohttp's server with one route that hands the /run payload to `forward`."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(await forward(run_payload(await request.read())))

    app = web.Application()
    app.router.add_post("/invoke", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def runtime_forward(socket_path: str) -> Forward:
    """Nimbus's runtime client to the container: what the gateway itself uses."""
    client = RuntimeClient()
    address = f"unix://{socket_path}"
    client.trust(address, None)

    async def forward(payload: dict[str, Any]) -> Any:
        return (await client.run(address, payload, 30.0)).body.get("result")

    return forward


async def bare(socket_path: str, port: int) -> None:
    """The bare aiohttp relay: aiohttp server -> aiohttp client -> container."""
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path))

    async def forward(payload: dict[str, Any]) -> Any:
        async with session.post("http://container/run", json=payload) as resp:
            return json.loads(await resp.read()).get("result")

    await serve_aiohttp(port, forward)


class RawRelay(asyncio.Protocol):
    """One client connection of the raw relay: HTTP/1.1 keep-alive, requests in order."""

    def __init__(self, forward: Forward) -> None:
        self._forward = forward
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._task = asyncio.get_running_loop().create_task(self._answer())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._queue.put_nowait(b"".join(self._body))
        self._body = []

    async def _answer(self) -> None:
        assert self._transport is not None
        while True:
            body = await self._queue.get()
            out = json.dumps(await self._forward(run_payload(body))).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            self._transport.write(head % len(out) + b"\r\n" + out)


async def raw(socket_path: str, port: int) -> None:
    """The raw relay: httptools on an asyncio protocol -> runtime client -> container."""
    forward = runtime_forward(socket_path)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RawRelay(forward), "127.0.0.1", port)
    async with server:
        await asyncio.Event().wait()


def serve_asgi(kind: str, forward: Forward, port: int) -> None:
    """uvicorn (httptools, uvloop, no access log) with a bare ASGI callable or Starlette."""
    import uvicorn

    app: Any
    if kind == "asgi":

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            out = json.dumps(await forward(run_payload(body))).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(out)),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": out})

    else:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def handle(request: Request) -> JSONResponse:
            return JSONResponse(await forward(run_payload(await request.body())))

        app = Starlette(routes=[Route("/invoke", handle, methods=["POST"])])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


def serve(kind: str, socket_path: str, port: int) -> None:
    """Run one relay until killed."""
    if kind in ALTERNATIVES:
        serve_asgi(kind, runtime_forward(socket_path), port)
    elif kind == "relay":
        asyncio.run(bare(socket_path, port))  # as the issue measured it: asyncio's loop
    elif kind == "lean":
        uvloop.run(serve_aiohttp(port, runtime_forward(socket_path)))
    else:
        uvloop.run(raw(socket_path, port))


def start_relay(socket_path: Path, kind: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start a relay in its own process; it and its URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, kind, str(socket_path), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/invoke"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=b"{}", method="POST")
            with urllib.request.urlopen(req) as r:
                r.read()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the {kind} relay did not start")


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
