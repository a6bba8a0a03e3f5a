"""One HTTP/1.1 connection that sends a request and reads its reply, one exchange at a time,
with httptools (llhttp) parsing the reply.

The transport, flow-control and failure plumbing that Nimbus's two lean clients share:
`invoker/runtime_client.py` (to runtime proxies, whose replies are hostile and bounded) and
`gateway/handover_client.py` (between gateway workers). A subclass keeps what the reply
holds (`on_header`, `on_body`, `_result`) and names its error type.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar, cast

import httptools

R = TypeVar("R")


class ReplyConnection(asyncio.Protocol, Generic[R]):
    """A connection whose exchange (`reply`) resolves with the parsed reply, or with the
    error that ends the connection. A connection that answered anything but one complete,
    kept-alive reply to each request is never used again (`usable` stays False)."""

    error: type[Exception] = ConnectionError
    """What a broken exchange raises (the subclass's own error)."""

    def __init__(self, name: str) -> None:
        self._name = name  # names the peer in errors
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.usable = False  # idle and fit for another exchange
        self.reply: asyncio.Future[R] | None = None
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end is not the close
        self._drained: asyncio.Future[None] | None = None

    # ---- what a subclass says ----

    def _result(self) -> R:
        """The reply as the exchange returns it, once it is complete."""
        raise NotImplementedError

    def _fed(self, size: int) -> None:
        """`size` more bytes were parsed (a place to bound what a peer may send)."""

    def _reset(self) -> None:
        """Forget the last reply (a new exchange, or the real answer after an interim one)."""
        self._headers_done = self._framed = False

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, so no isinstance).
        self.transport = cast(asyncio.Transport, transport)
        self.usable = True

    def data_received(self, data: bytes) -> None:
        if self.reply is None or self.reply.done():
            return self._fail(self.error(f"{self._name} sent bytes nobody asked for"))
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return self._fail(self.error(f"{self._name} answered with an upgrade"))
        except httptools.HttpParserError as exc:
            return self._fail(self.error(f"{self._name} answered malformed HTTP: {exc}"))
        self._fed(len(data))

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)  # the write fails at its next piece
        reply = self.reply
        if reply is None or reply.done():
            return
        if self._headers_done and not self._framed:  # a body that ends at the close
            reply.set_result(self._result())
        else:
            reply.set_exception(self.error(f"{self._name} failed: connection closed"))

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # ---- httptools callbacks ----

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:  # an interim answer: the real one follows
            return self._reset()
        reply = self.reply
        if reply is None or reply.done():
            return self._fail(self.error(f"{self._name} answered twice"))
        if not self._parser.should_keep_alive():
            self.close()
        reply.set_result(self._result())

    # ---- the exchange ----

    def _begin(self) -> asyncio.Future[R]:
        """Start an exchange: the future its reply resolves."""
        self.usable = False
        self._reset()
        reply: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.reply = reply
        return reply

    def close(self) -> None:
        """Close the connection; it is never used again."""
        self.usable = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        """End the connection; the exchange in progress, if any, fails with `exc`."""
        self.close()
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)
