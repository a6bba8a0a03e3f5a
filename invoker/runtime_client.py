"""The /init and /run protocol, spoken once for every driver over one shared aiohttp session.

Containers are reached either at ``unix:/path/to.sock`` (Docker and process drivers:
a socket in a bind-mounted directory, which works with networking disabled and is
faster than a published port) or at ``http://host:port`` (Kubernetes pod IPs). One
`aiohttp.ClientSession` serves both: its connector opens unix connections for hosts
it has registered and TCP connections for everything else, so connection pooling and
keep-alive work per container either way.

A container can write the directory its socket lives in, so the socket's path is never
followed after `trust`: the socket is pinned there (an O_PATH handle, refused unless it is
a socket and not a symlink, taken before any function code runs) and every connection is
made through ``/proc/self/fd/<handle>``, which reaches the pinned socket whatever the
container puts at the path later. Replies are read up to a bound: a container's answer is
hostile input.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from invoker.init_body import OFF_LOOP_BYTES, init_body

UNIX_PREFIX = "unix:"
JSON_HEADERS = {"Content-Type": "application/json"}
MAX_RESULT_BYTES = 6 * 2**20
"""The largest result a call may return (as JSON), as Lambda's synchronous limit."""
MAX_LOG_BYTES = 2**20
"""The most log text kept of one call; the proxy stops capturing there, and so do we."""
MAX_REPLY_BYTES = MAX_RESULT_BYTES + MAX_LOG_BYTES + 64 * 2**10
"""The most of one /init or /run answer read: a result, its logs and the JSON around them."""
SEND_PIECE_BYTES = 256 * 1024
"""A request body larger than this is written a piece at a time (see `_pieces`)."""


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


class _RoutingConnector(aiohttp.TCPConnector):
    """TCP connector that opens unix-socket connections for registered host names."""

    def __init__(self, handles: dict[str, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handles = handles

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: Any, timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        handle = self._handles.get(req.host)
        if handle is None:
            return await super()._create_connection(req, traces, timeout)
        path = f"/proc/self/fd/{handle}"  # the pinned socket, never the container's path
        try:
            async with asyncio.timeout(timeout.sock_connect):
                _, proto = await self._loop.create_unix_connection(self._factory, path)
        except OSError as exc:
            raise aiohttp.ClientConnectionError(f"cannot connect to {path}: {exc}") from exc
        return proto


class RuntimeClient:
    """Speaks /init, /run and /healthz to runtime proxies. Create one per process."""

    def __init__(self, *, connections: int = 1000) -> None:
        self._handles: dict[str, int] = {}  # unix host name -> pinned socket
        self._headers: dict[str, dict[str, str]] = {}  # address -> request headers
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._urls: dict[tuple[str, str], URL] = {}
        self._session: aiohttp.ClientSession | None = None
        self._connections = connections

    def _url(self, address: str, path: str) -> URL:
        """The parsed URL of `path` on a container, kept: parsing it per call costs."""
        url = self._urls.get((address, path))
        if url is None:
            url = self._urls[(address, path)] = URL(self._base_url(address) + path)
        return url

    def _base_url(self, address: str) -> str:
        if address.startswith(UNIX_PREFIX):
            host = _unix_host(address)
            if host not in self._handles:
                self._handles[host] = pin_socket(address[len(UNIX_PREFIX) :])
            return f"http://{host}"
        return address.rstrip("/")

    def trust(self, address: str, token: str | None) -> None:
        """Take on a new container at `address`, which asks for `token` (None: no token).

        Call it as soon as the driver has started the container, before any function code
        runs in it: a unix socket is pinned here. ProxyError when it cannot be.
        """
        if address.startswith(UNIX_PREFIX):
            self._unpin(address)  # a new container at a path an earlier one used
            self._handles[_unix_host(address)] = pin_socket(address[len(UNIX_PREFIX) :])
        if token:
            self._headers[address] = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
        else:  # a new container at an address an earlier one used
            self._headers.pop(address, None)

    def forget(self, address: str) -> None:
        """Drop the routing entry, pinned socket and token of a container that is gone."""
        self._headers.pop(address, None)
        for path in ("/init", "/run", "/healthz"):
            self._urls.pop((address, path), None)
        if address.startswith(UNIX_PREFIX):
            self._unpin(address)

    def _unpin(self, address: str) -> None:
        handle = self._handles.pop(_unix_host(address), None)
        if handle is not None:
            os.close(handle)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = _RoutingConnector(
                self._handles, limit=self._connections, limit_per_host=0, keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=json.dumps, raise_for_status=False
            )
        return self._session

    async def close(self) -> None:
        """Close the shared session and the pinned sockets."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        for handle in self._handles.values():
            os.close(handle)
        self._handles.clear()

    async def _post(self, address: str, path: str, body: bytes, timeout: float) -> RunResponse:
        url = self._url(address, path)
        # Bytes and ready-made headers and timeouts: aiohttp's JSON payload and a timeout
        # object per call are a measurable share of a warm call's CPU.
        limit = self._timeouts.get(timeout)
        if limit is None:
            limit = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        headers = self._headers.get(address, JSON_HEADERS)
        data: bytes | AsyncIterator[memoryview] = body
        if len(body) > SEND_PIECE_BYTES:
            data, headers = _pieces(body), {**headers, "Content-Length": str(len(body))}
        try:
            async with self.session.post(url, data=data, headers=headers, timeout=limit) as resp:
                raw = await _read_bounded(resp, path)
        except TimeoutError as exc:
            raise RunTimeout(f"{path} did not answer within {timeout:g} s") from exc
        except aiohttp.ClientError as exc:
            raise ProxyError(f"{path} failed: {exc}") from exc
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ProxyError(f"{path} answered with invalid JSON") from exc
        if not isinstance(answer, dict):
            raise ProxyError(f"{path} answered with a non-object body")
        return RunResponse(resp.status, answer, len(raw))

    async def wait_ready(self, address: str, timeout: float) -> None:
        """Poll /healthz until the proxy answers or `timeout` passes."""
        url = self._base_url(address) + "/healthz"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.002
        last: Exception | None = None
        while loop.time() < deadline:
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
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
        return await self._post(address, "/init", body, timeout)

    async def run(self, address: str, payload: dict[str, Any], timeout: float) -> RunResponse:
        """Run one activation; raises RunTimeout past `timeout`."""
        return await self._post(address, "/run", json.dumps(payload).encode(), timeout)


async def _pieces(body: bytes) -> AsyncIterator[memoryview]:
    """The body a piece at a time, each sent before the next is handed over.

    What one write cannot send at once, asyncio's transport copies into its buffer: for a
    64 MiB /init body that is a copy long enough to stall the event loop.
    """
    view = memoryview(body)
    for at in range(0, len(view), SEND_PIECE_BYTES):
        yield view[at : at + SEND_PIECE_BYTES]


def _unix_host(address: str) -> str:
    """The made-up host name under which a unix address is pooled."""
    return "u" + hashlib.sha1(address.encode()).hexdigest()[:20] + ".sock"


async def _read_bounded(resp: aiohttp.ClientResponse, path: str) -> bytes:
    """The body, or ReplyTooLarge as soon as it is known to pass MAX_REPLY_BYTES."""
    length = resp.content_length
    if length is not None and length > MAX_REPLY_BYTES:
        resp.close()  # the connection is dropped, not drained
        raise ReplyTooLarge(f"{path} answered {length} bytes")
    if length is not None:
        return await resp.read()  # the parser stops at Content-Length
    chunks, size = [], 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            resp.close()
            raise ReplyTooLarge(f"{path} answered more than {MAX_REPLY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
