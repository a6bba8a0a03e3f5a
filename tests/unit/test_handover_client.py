"""The lean client a worker relays handed-over calls with, against a real aiohttp server
on a unix socket (and a raw one where an owner must misbehave)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from gateway.handover_client import HandoverClient, NotSent, RelayFailed

MB = 2**20


@dataclass
class Owner:
    """A stand-in owner: its socket, and what it saw of each request."""

    path: str
    seen: list[dict[str, object]] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    received: int = 0  # bytes of the current body read so far


OWNER = web.AppKey("owner", Owner)


class Pieces:
    """A request body arriving a piece at a time; counts what the relay took of it."""

    def __init__(self, data: bytes, size: int, owner: Owner | None = None) -> None:
        self._data, self._size, self.taken = data, size, 0
        self._owner, self.lead = owner, 0  # the most taken ahead of what the owner received

    def is_eof(self) -> bool:
        return self.taken >= len(self._data)

    def read_nowait(self, n: int = -1) -> bytes:
        rest, self.taken = self._data[self.taken :], len(self._data)
        return rest

    async def readany(self) -> bytes:
        await asyncio.sleep(0)
        piece = self._data[self.taken : self.taken + self._size]
        self.taken += len(piece)
        if self._owner is not None:
            self.lead = max(self.lead, self.taken - self._owner.received)
        return piece


class Whole(Pieces):
    """A small body that has fully arrived (as aiohttp's reader holds it)."""

    def is_eof(self) -> bool:
        return True


async def echo(request: web.Request) -> web.StreamResponse:
    """Says what it got; two cookies, as a web function may set them."""
    owner: Owner = request.app[OWNER]
    digest, size = hashlib.sha256(), 0
    async for piece in request.content.iter_any():
        digest.update(piece)
        size += len(piece)
        owner.received = size
        if request.query.get("slow"):
            await asyncio.sleep(0.001)
    owner.transports.append(request.transport)  # type: ignore[arg-type]
    owner.seen.append(
        {
            "method": request.method,
            "path": request.raw_path,
            "host": request.host,
            "headers": dict(request.headers),
            "size": size,
            "sha": digest.hexdigest(),
        }
    )
    out = web.Response(status=201, body=b"made", headers={"X-Owner": "1"})
    out.set_cookie("a", "1")
    out.set_cookie("b", "2")
    return out


async def chunked(request: web.Request) -> web.StreamResponse:
    out = web.StreamResponse(status=200)
    out.enable_chunked_encoding()
    await out.prepare(request)
    for piece in (b"one ", b"two ", b"three"):
        await out.write(piece)
    await out.write_eof()
    return out


@pytest.fixture
async def owner(tmp_path: Path) -> AsyncIterator[Owner]:
    path = str(tmp_path / "owner.sock")
    state = Owner(path)
    app = web.Application()
    app[OWNER] = state
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/chunked", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    yield state
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[HandoverClient]:
    relay = HandoverClient()
    yield relay
    await relay.close()


async def test_status_headers_and_body_are_relayed(owner: Owner, client: HandoverClient) -> None:
    headers = [("X-Nimbus-Handed-Over", "0"), ("Authorization", "Bearer k"), ("X-Two", "é")]
    reply = await client.request(
        owner.path, "POST", "/echo?q=a%20b", "worker1", headers, Whole(b'{"x": 1}', 4), 8
    )
    assert reply.status == 201 and reply.body == b"made"
    names = [name.lower() for name, _ in reply.headers]
    assert names.count("set-cookie") == 2 and ("X-Owner", "1") in reply.headers
    seen = owner.seen[0]
    assert (seen["method"], seen["path"], seen["host"]) == ("POST", "/echo?q=a%20b", "worker1")
    assert seen["sha"] == hashlib.sha256(b'{"x": 1}').hexdigest()
    sent = seen["headers"]
    assert isinstance(sent, dict)
    assert sent["Authorization"] == "Bearer k" and sent["X-Two"] == "é"
    assert sent["Content-Length"] == "8" and sent["X-Nimbus-Handed-Over"] == "0"


async def test_connections_are_kept_alive_and_reused(owner: Owner, client: HandoverClient) -> None:
    for _ in range(5):
        reply = await client.request(owner.path, "GET", "/echo", "w", [], None, None)
        assert reply.status == 201
    assert len({id(t) for t in owner.transports}) == 1
    assert client.connections(owner.path) == 1


async def test_concurrent_calls_use_a_connection_each(owner: Owner, client: HandoverClient) -> None:
    calls = [client.request(owner.path, "GET", "/echo", "w", [], None, None) for _ in range(4)]
    assert [r.status for r in await asyncio.gather(*calls)] == [201] * 4
    assert client.connections(owner.path) == 4


@pytest.mark.parametrize("length", [16 * MB, None], ids=["content-length", "chunked"])
async def test_a_large_body_is_streamed_no_faster_than_the_owner_takes_it(
    owner: Owner, client: HandoverClient, length: int | None
) -> None:
    data = bytes(range(256)) * (16 * MB // 256)
    body = Pieces(data, 64 * 1024, owner)
    reply = await client.request(owner.path, "PUT", "/echo?slow=1", "w", [], body, length)
    assert reply.status == 201
    seen = owner.seen[-1]
    assert (seen["size"], seen["sha"]) == (len(data), hashlib.sha256(data).hexdigest())
    # Never a whole body in memory: the relay stays within socket buffers of the owner.
    assert body.taken == len(data) and 0 < body.lead < 4 * MB


async def test_a_chunked_reply_is_read_whole(owner: Owner, client: HandoverClient) -> None:
    reply = await client.request(owner.path, "GET", "/chunked", "w", [], None, None)
    assert (reply.status, reply.body) == (200, b"one two three")
    again = await client.request(owner.path, "GET", "/chunked", "w", [], None, None)
    assert again.body == b"one two three" and client.connections(owner.path) == 1


async def test_a_head_answer_ends_with_its_headers(owner: Owner, client: HandoverClient) -> None:
    reply = await asyncio.wait_for(
        client.request(owner.path, "HEAD", "/chunked", "w", [], None, None), 5
    )
    assert (reply.status, reply.body) == (200, b"")


async def test_a_missing_or_refusing_socket_is_not_sent(
    tmp_path: Path, client: HandoverClient
) -> None:
    with pytest.raises(NotSent):
        await client.request(str(tmp_path / "gone.sock"), "GET", "/", "w", [], None, None)
    refusing = str(tmp_path / "refusing.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(refusing)  # bound, never listening: connections are refused
        with pytest.raises(NotSent):
            await client.request(refusing, "GET", "/", "w", [], None, None)


async def test_a_stale_pooled_connection_is_replaced_before_anything_is_sent(
    owner: Owner, client: HandoverClient
) -> None:
    await client.request(owner.path, "GET", "/echo", "w", [], None, None)
    owner.transports[0].close()  # the owner drops the idle connection (as a restart does)
    await asyncio.sleep(0.05)
    reply = await client.request(owner.path, "POST", "/echo", "w", [], Whole(b"x", 1), 1)
    assert reply.status == 201 and owner.seen[-1]["size"] == 1
    assert len({id(t) for t in owner.transports}) == 2


async def raw_owner(path: str, answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
    """An owner that reads a request head, then does `answer`."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer)

    await asyncio.start_unix_server(serve, path)


async def test_an_owner_closing_mid_reply_fails_the_call_at_once(
    tmp_path: Path, client: HandoverClient
) -> None:
    async def half(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    path = str(tmp_path / "half.sock")
    await raw_owner(path, half)
    with pytest.raises(RelayFailed):
        await asyncio.wait_for(client.request(path, "GET", "/", "w", [], None, None), 5)


async def test_an_owner_closing_before_answering_fails_the_call(
    tmp_path: Path, client: HandoverClient
) -> None:
    async def vanish(writer: asyncio.StreamWriter) -> None:
        writer.close()

    path = str(tmp_path / "vanish.sock")
    await raw_owner(path, vanish)
    with pytest.raises(RelayFailed):
        await asyncio.wait_for(client.request(path, "GET", "/", "w", [], None, None), 5)


async def test_close_ends_every_connection(owner: Owner, client: HandoverClient) -> None:
    calls = [client.request(owner.path, "GET", "/echo", "w", [], None, None) for _ in range(3)]
    await asyncio.gather(*calls)
    await client.close()
    await asyncio.sleep(0.01)
    assert client.connections(owner.path) == 0
    assert all(t.is_closing() for t in owner.transports)
