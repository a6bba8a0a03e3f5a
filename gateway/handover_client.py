"""The lean HTTP/1.1 client a worker relays handed-over calls with (`gateway/workers.py`).

Another worker's handover socket is reached over a few kept-alive unix connections, one
exchange at a time on each, with httptools (llhttp) parsing the replies: a relayed warm
call is one write and one parse (an aiohttp client session cost ~0.17 ms more per call).

What a failure means is what the relay needs to know: `NotSent` (the owner could not be
reached, nothing of the request left this worker: the call may be served here) or
`RelayFailed` (bytes of the request were written: the call may have run, it must never run
a second time). A pooled connection found closed before anything was written to it is
dropped for another one; once bytes were written, nothing is ever retried.

There is no timeout: the owner bounds the call by the function's timeout. A connection that
closes fails its exchange at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from invoker.reply_protocol import ReplyConnection

ONE_WRITE_BYTES = 256 * 1024
"""A body that has fully arrived and is at most this large goes out with the head in one
write; a larger or unfinished one is streamed a piece at a time, waiting for the socket."""
IDLE_PER_OWNER = 64  # idle connections kept per owner; more are closed
IDLE_S = 30.0
"""How long an idle connection is kept: well under the owner's keep-alive timeout (aiohttp's
75 s), so the owner never closes one just as a request is written to it."""


class NotSent(Exception):
    """The owner could not be reached; nothing of the request was written."""


class RelayFailed(Exception):
    """The exchange failed after bytes of the request were written: the call may have run."""


class Content(Protocol):
    """A request body as it arrives (aiohttp's `StreamReader` is one)."""

    def is_eof(self) -> bool: ...

    def read_nowait(self, n: int = -1) -> bytes: ...

    async def readany(self) -> bytes: ...


@dataclass(frozen=True)
class Reply:
    """The owner's answer: status, every header as sent (repeated ones too), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")  # as aiohttp decodes headers


def request_head(
    method: str, target: str, host: str, headers: Iterable[tuple[str, str]], length: int | None
) -> bytes:
    """The request line and headers; `length` None: a chunked body (or none for a bodiless
    method, when `headers` frame nothing either)."""
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    lines.append("\r\n" if length is None else f"Content-Length: {length}\r\n\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


CHUNKED = ("Transfer-Encoding", "chunked")
LAST_CHUNK = b"0\r\n\r\n"


class _Connection(ReplyConnection[Reply]):
    """One connection to an owner: one request and its whole reply (status, every header,
    body) at a time. A connection is kept only after a complete exchange the owner keeps
    alive."""

    error = RelayFailed

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.idle_since = 0.0
        self._headers: list[tuple[str, str]] = []
        self._chunks: list[bytes] = []
        self._head_only = False  # the answer to a HEAD: no body, whatever it declares

    def _result(self) -> Reply:
        return Reply(self._parser.get_status_code(), self._headers, b"".join(self._chunks))

    def _reset(self) -> None:
        super()._reset()
        self._headers, self._chunks = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True
        self._headers.append((_text(name), _text(value)))

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        reply = self.reply
        if self._head_only and self._parser.get_status_code() >= 200 and reply is not None:
            # llhttp would wait for the body a HEAD answer declares but never sends: the
            # answer ends here, and so does the connection (its parser is past use).
            if not reply.done():
                reply.set_result(self._result())
            self.close()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    async def exchange(
        self, head: bytes, content: Content | None, length: int | None, *, head_only: bool
    ) -> Reply:
        """Send one request (`head`, then the body from `content`, `length` None: chunked);
        the reply. RelayFailed if the connection fails on the way."""
        assert self.transport is not None
        reply = self._begin()
        self._head_only = head_only
        sent_all = True
        if content is None:
            self.transport.write(head)
        elif content.is_eof() and (length is None or length <= ONE_WRITE_BYTES):
            body = content.read_nowait()  # arrived whole: one write for a warm call
            if length is None:
                body = b"%x\r\n%b\r\n%b" % (len(body), body, LAST_CHUNK) if body else LAST_CHUNK
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            sent_all = await self._stream(content, chunked=length is None)
        answer = await reply
        self.usable = sent_all and not self.transport.is_closing()
        return answer

    async def _stream(self, content: Content, *, chunked: bool) -> bool:
        """Write the body as it arrives, never more than the socket takes; whether all of it
        went (an owner that answered early, or closed, stops it)."""
        assert self.transport is not None and self.reply is not None
        try:
            while not self.transport.is_closing() and not self.reply.done():
                piece = await content.readany()
                if not piece:
                    if chunked:
                        self.transport.write(LAST_CHUNK)
                    return True
                if chunked:
                    self.transport.write(b"%x\r\n" % len(piece))
                    self.transport.write(piece + b"\r\n")
                else:
                    self.transport.write(piece)
                if self._drained is not None:
                    await self._drained
        except Exception as exc:  # the caller's body failed (its client went away)
            self._fail(RelayFailed(f"the request's body failed: {exc!r}"))
        return False


@dataclass
class _Pool:
    """One owner's idle connections, and every live one (closed with the client)."""

    idle: list[_Connection]
    live: set[_Connection]


class HandoverClient:
    """Relays requests to other workers' handover sockets. One per worker process."""

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}

    async def request(
        self,
        path: str,
        method: str,
        target: str,
        host: str,
        headers: Iterable[tuple[str, str]],
        content: Content | None,
        length: int | None,
    ) -> Reply:
        """`method target` with `headers` to the unix socket at `path` (`host`: its Host
        header); the body from `content` (None: no body), `length` bytes long (None with a
        body: sent chunked). NotSent or RelayFailed as the module says."""
        pool = self._pools.get(path)
        if pool is None:
            pool = self._pools[path] = _Pool([], set())
        conn = self._idle(pool) or await self._connect(path, pool)
        if content is not None and length is None:
            headers = [*headers, CHUNKED]
        head = request_head(method, target, host, headers, length)
        try:
            return await conn.exchange(head, content, length, head_only=method == "HEAD")
        except OSError as exc:
            raise RelayFailed(f"{path} failed: {exc}") from exc
        finally:
            self._release(pool, conn)

    def _idle(self, pool: _Pool) -> _Connection | None:
        """The most recently used idle connection still open and not idle for too long."""
        now = asyncio.get_running_loop().time()
        while pool.idle:
            conn = pool.idle.pop()
            transport = conn.transport
            if conn.usable and transport is not None and not transport.is_closing():
                if now - conn.idle_since < IDLE_S:
                    return conn
            conn.close()  # closed by the owner meanwhile (or about to be): nothing written
            pool.live.discard(conn)
        return None

    async def _connect(self, path: str, pool: _Pool) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(path)
        try:
            await loop.create_unix_connection(lambda: conn, path)
        except OSError as exc:
            raise NotSent(f"cannot connect to {path}: {exc}") from exc
        pool.live.add(conn)
        return conn

    def _release(self, pool: _Pool, conn: _Connection) -> None:
        """Keep a connection that finished its exchange cleanly; close any other."""
        if conn.usable and len(pool.idle) < IDLE_PER_OWNER:
            conn.idle_since = asyncio.get_running_loop().time()
            pool.idle.append(conn)
            return
        conn.close()
        pool.live.discard(conn)

    def connections(self, path: str) -> int:
        """How many connections to `path` are open (idle or in an exchange)."""
        pool = self._pools.get(path)
        if pool is None:
            return 0
        return sum(
            conn.transport is not None and not conn.transport.is_closing() for conn in pool.live
        )

    async def close(self) -> None:
        """Close every connection, idle or not (an exchange in progress fails)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            for conn in pool.live:
                conn.close()
