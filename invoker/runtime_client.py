"""The /init and /run protocol, spoken once for every driver: HTTP/1.1 over kept-alive
connections, with httptools (llhttp) parsing the replies.

Containers are reached either at ``unix:/path/to.sock`` (Docker and process drivers:
a socket in a bind-mounted directory, which works with networking disabled and is
faster than a published port) or at ``http://host:port`` (Kubernetes pod IPs). Each
container has its own idle connections, one exchange at a time on each: a warm call is one
write and one parse (an aiohttp client session cost over twice the CPU per call).

A container can write the directory its socket lives in, so the socket's path is never
followed after `trust`: the socket is pinned there (an O_PATH handle, refused unless it is
a socket and not a symlink, taken before any function code runs) and every connection is
made through ``/proc/self/fd/<handle>``, which reaches the pinned socket whatever the
container puts at the path later. Replies are read up to a bound: a container's answer is
hostile input (its head, its length, its body, anything it sends unasked).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from invoker.init_body import OFF_LOOP_BYTES, init_body
from invoker.reply_protocol import ReplyConnection

UNIX_PREFIX = "unix:"
MAX_RESULT_BYTES = 6 * 2**20
"""The largest result a call may return (as JSON), as Lambda's synchronous limit."""
MAX_LOG_BYTES = 2**20
"""The most log text kept of one call; the proxy stops capturing there, and so do we."""
MAX_REPLY_BYTES = MAX_RESULT_BYTES + MAX_LOG_BYTES + 64 * 2**10
"""The most of one /init or /run answer read: a result, its logs and the JSON around them."""
MAX_HEAD_BYTES = 64 * 2**10
"""The most of a reply's status line and headers read before they must be complete."""
SEND_PIECE_BYTES = 256 * 1024
"""A request body larger than this is written a piece at a time, waiting for the socket."""
IDLE_PER_CONTAINER = 64  # idle connections kept per container; more are closed


class ProxyError(Exception):
    """The container did not answer the protocol (a platform error, not the function's)."""


class ReplyTooLarge(ProxyError):
    """The container's answer passed MAX_REPLY_BYTES (the function's failure)."""


class RunTimeout(Exception):
    """The call outlived its deadline."""


def pin_socket(path: str) -> int:
    """An O_PATH handle on the unix socket at `path`; ProxyError if it is anything else.

    O_NOFOLLOW makes a symlink in the last component open as the link itself, which the
    S_ISSOCK check then refuses.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ProxyError(f"cannot open the runtime socket: {exc.strerror}") from exc
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        raise ProxyError("the runtime socket is not a socket")
    return fd


@dataclass(frozen=True)
class RunResponse:
    """What the proxy answered to /init or /run."""

    status: int
    body: dict[str, Any]
    size: int = 0  # bytes of the answer's body

    @property
    def ok(self) -> bool:
        return self.status == 200


class _Connection(ReplyConnection[tuple[int, bytes]]):
    """One connection to a proxy: one request and its bounded reply (status, body) at a
    time; a container's answer is hostile, so its head and body are read up to a bound."""

    error = ProxyError

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._chunks: list[bytes] = []
        self._size = 0
        self._head = 0  # bytes of the reply's headers
        self._before = 0  # bytes received before the headers were complete

    def _result(self) -> tuple[int, bytes]:
        return self._parser.get_status_code(), b"".join(self._chunks)

    def _fed(self, size: int) -> None:
        if not self._headers_done:  # a head line that never ends
            self._before += size
            if self._before > MAX_HEAD_BYTES:
                self._fail(ProxyError(f"{self._name} answered a head over {MAX_HEAD_BYTES}"))

    def _reset(self) -> None:
        super()._reset()
        self._chunks, self._size, self._head, self._before = [], 0, 0, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head += len(name) + len(value)
        if self._head > MAX_HEAD_BYTES:
            return self._fail(ProxyError(f"{self._name} answered a head over {MAX_HEAD_BYTES}"))
        name = name.lower()
        if name == b"content-length":
            self._framed = True
            if value.strip().isdigit() and int(value) > MAX_REPLY_BYTES:
                self._fail(ReplyTooLarge(f"{self._name} answered {int(value)} bytes"))
        elif name == b"transfer-encoding":
            self._framed = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_REPLY_BYTES:
            return self._fail(ReplyTooLarge(f"{self._name} answered over {MAX_REPLY_BYTES} bytes"))
        self._chunks.append(body)

    def expire(self) -> None:
        """The exchange's deadline passed: drop the connection (it cannot be reused)."""
        self._fail(RunTimeout())

    async def exchange(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send one request; the reply's status and body. The caller bounds the time."""
        assert self.transport is not None
        reply = self._begin()
        if len(body) <= SEND_PIECE_BYTES:
            self.transport.write(head + body)  # one send for a warm call
        else:
            self.transport.write(head)
            view = memoryview(body)
            for at in range(0, len(view), SEND_PIECE_BYTES):
                if self.transport.is_closing():
                    break  # the reply (or its absence) says why
                self.transport.write(view[at : at + SEND_PIECE_BYTES])
                if self._drained is not None:
                    await self._drained  # a large /init body never waits in one buffer
        answer = await reply
        self.usable = not self.transport.is_closing()
        return answer


@dataclass
class _Target:
    """How to reach one container, and its idle connections."""

    connect_to: str  # /proc/self/fd/<handle> or host
    port: int | None  # None: a unix socket
    host: str  # the Host header
    auth: bytes  # the Authorization header line, or b""
    handle: int | None = None
    idle: list[_Connection] = field(default_factory=list)
    _heads: dict[tuple[bytes, str], bytes] = field(default_factory=dict)

    def head(self, method: bytes, path: str, length: int) -> bytes:
        """The request line and headers of a JSON request with a `length`-byte body."""
        start = self._heads.get((method, path))
        if start is None:
            start = self._heads[(method, path)] = (
                (
                    f"{method.decode()} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                    "Content-Type: application/json\r\n"
                ).encode()
                + self.auth
                + b"Content-Length: "
            )
        return start + str(length).encode() + b"\r\n\r\n"


class RuntimeClient:
    """Speaks /init, /run and /healthz to runtime proxies. Create one per process."""

    def __init__(self) -> None:
        self._targets: dict[str, _Target] = {}

    def _target(self, address: str) -> _Target:
        target = self._targets.get(address)
        if target is None:
            target = self._targets[address] = _new_target(address, None)
        return target

    def trust(self, address: str, token: str | None) -> None:
        """Take on a new container at `address`, which asks for `token` (None: no token).

        Call it as soon as the driver has started the container, before any function code
        runs in it: a unix socket is pinned here. ProxyError when it cannot be.
        """
        self.forget(address)  # a new container at an address an earlier one used
        self._targets[address] = _new_target(address, token)

    def forget(self, address: str) -> None:
        """Drop the pinned socket, token and connections of a container that is gone."""
        target = self._targets.pop(address, None)
        if target is None:
            return
        for conn in target.idle:
            conn.close()
        if target.handle is not None:
            os.close(target.handle)

    async def close(self) -> None:
        """Close every idle connection and pinned socket."""
        for address in list(self._targets):
            self.forget(address)

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(target.connect_to)
        try:
            if target.port is None:  # the pinned socket, never the container's path
                await loop.create_unix_connection(lambda: conn, target.connect_to)
            else:
                await loop.create_connection(lambda: conn, target.connect_to, target.port)
        except OSError as exc:
            raise ProxyError(f"cannot connect to {target.connect_to}: {exc}") from exc
        return conn

    async def _request(
        self, address: str, method: bytes, path: str, body: bytes, timeout: float
    ) -> RunResponse:
        target = self._target(address)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = None
        while target.idle:
            candidate = target.idle.pop()
            if candidate.usable:  # not closed by the proxy while it was idle
                conn = candidate
                break
        expiry = None
        try:
            if conn is None:
                async with asyncio.timeout_at(deadline):
                    conn = await self._connect(target)
            # A plain timer, not asyncio.timeout: no cancellation machinery on a warm call.
            expiry = loop.call_at(deadline, conn.expire)
            status, raw = await conn.exchange(target.head(method, path, len(body)), body)
        except (TimeoutError, RunTimeout) as exc:
            raise RunTimeout(f"{path} did not answer within {timeout:g} s") from exc
        except OSError as exc:
            raise ProxyError(f"{path} failed: {exc}") from exc
        finally:
            if expiry is not None:
                expiry.cancel()
            if conn is not None:
                self._release(address, target, conn)
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ProxyError(f"{path} answered with invalid JSON") from exc
        if not isinstance(answer, dict):
            raise ProxyError(f"{path} answered with a non-object body")
        return RunResponse(status, answer, len(raw))

    def _release(self, address: str, target: _Target, conn: _Connection) -> None:
        """Keep a connection that finished its exchange cleanly; close any other."""
        kept = self._targets.get(address) is target  # not forgotten or replaced meanwhile
        if conn.usable and kept and len(target.idle) < IDLE_PER_CONTAINER:
            target.idle.append(conn)
        else:
            conn.close()

    async def wait_ready(self, address: str, timeout: float) -> None:
        """Poll /healthz until the proxy answers or `timeout` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.002
        last: Exception | None = None
        while loop.time() < deadline:
            try:
                resp = await self._request(address, b"GET", "/healthz", b"", 1.0)
                if resp.status == 200:
                    return
            except (ProxyError, RunTimeout) as exc:
                last = exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        raise ProxyError(f"runtime at {address} not ready after {timeout:g} s: {last}")

    async def init(
        self,
        address: str,
        *,
        code: str | bytes,
        binary: bool,
        main: str,
        env: dict[str, str],
        timeout: float,
    ) -> RunResponse:
        """Send the function's code once; a non-200 answer means the code cannot load.

        `code` is the raw code (bytes: base64-encoded here when `binary`) or the text as
        sent (str). A large body is built in a thread, in pieces (see `init_body`).
        """
        if len(code) > OFF_LOOP_BYTES:
            body = await asyncio.to_thread(init_body, code, binary=binary, main=main, env=env)
        else:
            body = init_body(code, binary=binary, main=main, env=env)
        return await self._request(address, b"POST", "/init", body, timeout)

    async def run(self, address: str, payload: dict[str, Any], timeout: float) -> RunResponse:
        """Run one activation; raises RunTimeout past `timeout`."""
        return await self._request(address, b"POST", "/run", json.dumps(payload).encode(), timeout)


def _new_target(address: str, token: str | None) -> _Target:
    """How to reach `address`: a unix socket is pinned now (ProxyError if it cannot be)."""
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    if address.startswith(UNIX_PREFIX):
        handle = pin_socket(address[len(UNIX_PREFIX) :])
        return _Target(f"/proc/self/fd/{handle}", None, "runtime", auth, handle)
    parts = urlsplit(address)
    if parts.hostname is None:
        raise ProxyError(f"not a runtime address: {address!r}")
    port = parts.port or 80
    return _Target(parts.hostname, port, parts.netloc, auth)
