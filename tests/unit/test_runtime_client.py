"""The invoker's data path to a runtime proxy: `RuntimeClient` against the real proxy, and
against scripted proxies that answer wrongly, slowly, too much, or not at all."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from invoker.runtime_client import (
    MAX_REPLY_BYTES,
    ProxyError,
    ReplyTooLarge,
    RuntimeClient,
    RunTimeout,
)
from tests.unit.proxy_process import Proxy, unix_proxy  # noqa: F401  # fixture

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ECHO = "def handler(event):\n    return event\n"
OK = b'{"result": 1, "logs": []}'


def reply(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (the client always sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.startswith(b"Content-") and b"Length" in line
    )
    return await reader.readexactly(length)


class Scripted:
    """A unix-socket server that answers each connection with `answer`."""

    def __init__(self, path: Path, answer: Answer) -> None:
        self.path, self.answer, self.connections = path, answer, 0
        self.server: asyncio.AbstractServer | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.answer(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def address(self) -> str:
        return f"unix:{self.path}"


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[Callable[[Answer], Awaitable[Scripted]]]:
    servers: list[Scripted] = []

    async def start(answer: Answer) -> Scripted:
        proxy = Scripted(tmp_path / f"s{len(servers)}.sock", answer)
        proxy.server = await asyncio.start_unix_server(proxy.serve, str(proxy.path))
        servers.append(proxy)
        return proxy

    yield start
    for proxy in servers:
        assert proxy.server is not None
        proxy.server.close()


@pytest.fixture
async def client() -> AsyncIterator[RuntimeClient]:
    runtime = RuntimeClient()
    yield runtime
    await runtime.close()


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(reply(OK))


async def test_calls_reach_the_real_proxy_on_kept_connections_and_overlap(
    unix_proxy: Proxy,  # noqa: F811
    client: RuntimeClient,
) -> None:
    address = f"unix:{unix_proxy.socket_path}"
    client.trust(address, None)
    await client.wait_ready(address, 5)
    loaded = await client.init(
        address, code=ECHO, binary=False, main="main.handler", env={}, timeout=5
    )
    assert loaded.ok
    runs = await asyncio.gather(*(client.run(address, {"value": {"n": n}}, 5) for n in range(50)))
    assert [r.body["result"] for r in runs] == [{"n": n} for n in range(50)]
    assert all(r.ok and r.size > 0 for r in runs)
    again = await client.run(address, {"value": {"n": "x" * 300_000}}, 5)  # sent in pieces
    assert again.body["result"] == {"n": "x" * 300_000}


async def test_connections_are_kept_and_reused(scripted, client: RuntimeClient) -> None:
    proxy = await scripted(keep_answering)
    for _ in range(20):
        assert (await client.run(proxy.address, {}, 2)).body == {"result": 1, "logs": []}
    assert proxy.connections == 1


async def test_connection_close_is_honoured(scripted, client: RuntimeClient) -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(OK, "Connection: close"))
        await writer.drain()

    proxy = await scripted(once)
    for _ in range(3):
        assert (await client.run(proxy.address, {}, 2)).ok
    assert proxy.connections == 3


async def test_a_silent_proxy_times_out_and_its_connection_is_dropped(
    scripted, client: RuntimeClient
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    proxy = await scripted(silent)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RunTimeout):
        await client.run(proxy.address, {}, 0.2)
    assert loop.time() - started < 1.0
    with pytest.raises(RunTimeout):
        await client.run(proxy.address, {}, 0.1)
    assert proxy.connections == 2  # the timed-out connection was not reused


@pytest.mark.parametrize("framing", ["length", "chunked", "until-close"])
async def test_an_oversized_reply_is_cut_off(scripted, client: RuntimeClient, framing: str) -> None:
    size = MAX_REPLY_BYTES + 1

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if framing == "length":
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            await asyncio.sleep(30)  # the length alone is enough to refuse it
        head = "Transfer-Encoding: chunked\r\n" if framing == "chunked" else ""
        writer.write(f"HTTP/1.1 200 OK\r\n{head}\r\n".encode())
        piece = b"x" * 2**20
        for _ in range(size // len(piece) + 2):
            writer.write(b"100000\r\n" + piece + b"\r\n" if framing == "chunked" else piece)
            await writer.drain()

    proxy = await scripted(flood)
    with pytest.raises(ReplyTooLarge):
        await client.run(proxy.address, {}, 10)


async def test_a_proxy_that_dies_mid_reply_is_a_proxy_error(
    scripted, client: RuntimeClient
) -> None:
    async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"result": ')
        await writer.drain()

    proxy = await scripted(dies)
    with pytest.raises(ProxyError, match="closed"):
        await client.run(proxy.address, {}, 5)


@pytest.mark.parametrize(
    "answer",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        reply(b"[1, 2]"),
        reply(b"{not json"),
        b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (70 * 2**10) + b"\r\n\r\n",
        b"HTTP/1.1 101 Switching\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\n",
    ],
    ids=["garbage", "non-object", "invalid-json", "endless-head", "upgrade"],
)
async def test_malformed_replies_are_proxy_errors(
    scripted, client: RuntimeClient, answer: bytes
) -> None:
    async def wrong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(5)

    proxy = await scripted(wrong)
    with pytest.raises(ProxyError):
        await client.run(proxy.address, {}, 2)


async def test_bytes_sent_unasked_end_the_connection(scripted, client: RuntimeClient) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(OK) + reply(OK))  # a second answer nobody asked for
        await writer.drain()
        await keep_answering(reader, writer)

    proxy = await scripted(chatty)
    assert (await client.run(proxy.address, {}, 2)).ok
    await asyncio.sleep(0.05)
    assert (await client.run(proxy.address, {}, 2)).ok
    assert proxy.connections == 2


async def test_the_pinned_socket_is_reached_whatever_takes_its_path(
    scripted, client: RuntimeClient, tmp_path: Path
) -> None:
    async def mine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(b'{"result": "mine"}', "Connection: close"))
        await writer.drain()

    async def theirs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(b'{"result": "theirs"}'))
        await writer.drain()

    own, other = await scripted(mine), await scripted(theirs)
    client.trust(own.address, "t0ken")
    assert (await client.run(own.address, {}, 2)).body["result"] == "mine"
    own.path.unlink()
    os.symlink(other.path, own.path)  # the container swaps its socket for a link
    for _ in range(3):  # each call connects again (Connection: close)
        assert (await client.run(own.address, {}, 2)).body["result"] == "mine"
    assert other.connections == 0

    with pytest.raises(ProxyError, match="not a socket"):
        client.trust(own.address, None)  # a new container's path must be a real socket


async def test_the_token_is_sent_and_a_forgotten_container_drops_its_connections(
    scripted, client: RuntimeClient
) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(reply(OK))

    proxy = await scripted(record)
    client.trust(proxy.address, "s3cret")
    await client.run(proxy.address, {}, 2)
    assert b"Authorization: Bearer s3cret\r\n" in seen[0]
    client.forget(proxy.address)
    client.trust(proxy.address, None)
    await client.run(proxy.address, {}, 2)
    assert b"Authorization" not in seen[1]
    assert proxy.connections == 2
