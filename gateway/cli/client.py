"""The CLI's HTTP client: JSON calls, streamed uploads and downloads, to one gateway
with one API key (`config.Connection`).

Standard library only (urllib), so the commands that talk to a gateway start quickly and
need none of the server's dependencies. Every status is a `Reply`; `expect` turns the
unexpected ones into a `CliError` whose exit code says what kind of failure it was.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import IO, Any, Protocol

from gateway.cli.config import Connection, missing_key
from gateway.cli.errors import CliError, ExitCode

# A synchronous invoke may run 900 s (the longest function timeout) plus a cold start.
TIMEOUT_S = 960
CHUNK = 256 * 1024

Query = Mapping[str, str | int | float | None]


class Readable(Protocol):
    """What an upload reads from: a file, or a wrapper counting what is read."""

    def read(self, size: int = -1, /) -> bytes:
        """The next block."""
        ...


@dataclass(frozen=True)
class Reply:
    """What the gateway answered: a JSON payload, or the body's text if not JSON."""

    status: int
    headers: dict[str, str]
    payload: Any


class Client:
    """Requests to one gateway as one caller."""

    def __init__(self, connection: Connection, timeout: float = TIMEOUT_S) -> None:
        self.connection = connection
        self.timeout = timeout

    def url(self, path: str, query: Query | None = None) -> str:
        """The full URL of `path` with the query's set values."""
        shown = {k: str(v) for k, v in (query or {}).items() if v is not None}
        return self.connection.url + path + (f"?{urllib.parse.urlencode(shown)}" if shown else "")

    def _request(
        self,
        method: str,
        url: str,
        data: bytes | Readable | None,
        headers: Mapping[str, str],
        basic: bool = False,
    ) -> urllib.request.Request:
        key = self.connection.key
        if not key:
            raise missing_key()
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
        # The OpenWhisk facade (/api/v1) takes any API key as HTTP Basic's `user:password`.
        token = base64.b64encode(key.encode()).decode() if basic else key
        req.add_header("Authorization", f"Basic {token}" if basic else f"Bearer {token}")
        return req

    @contextmanager
    def _open(self, req: urllib.request.Request) -> Iterator[HTTPResponse]:
        """The response of any status (an HTTPError is one too); unreachable: exit 5."""
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                yield resp
        except urllib.error.HTTPError as exc:
            with exc:
                yield exc  # type: ignore[misc]
        except urllib.error.URLError as exc:
            raise CliError(
                f"cannot reach the gateway at {self.connection.url}: {exc.reason}",
                ExitCode.UNREACHABLE,
            ) from exc
        except (TimeoutError, ConnectionError) as exc:
            raise CliError(
                f"cannot reach the gateway at {self.connection.url}: {exc}", ExitCode.UNREACHABLE
            ) from exc

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Query | None = None,
        basic: bool = False,
    ) -> Reply:
        """Send `body` (as JSON, if any) to `path`; any HTTP status is a reply."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        req = self._request(method, self.url(path, query), data, headers, basic)
        with self._open(req) as resp:
            return Reply(resp.status, dict(resp.headers), decode(resp.read()))

    def upload(self, path: str, source: Readable, size: int, content_type: str) -> Reply:
        """PUT `size` bytes read from `source` as they are sent, never loaded whole."""
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        req = self._request("PUT", self.url(path), source, headers)
        with self._open(req) as resp:
            return Reply(resp.status, dict(resp.headers), decode(resp.read()))

    def download(
        self, path: str, sink: IO[bytes], started: Callable[[int | None], Callable[[int], None]]
    ) -> int:
        """GET `path` into `sink` a chunk at a time; `started(size)` (Content-Length, if
        given) returns what is told each chunk's length. Returns the bytes written; a
        status but 200 is the gateway's error, with nothing written."""
        req = self._request("GET", self.url(path), None, {})
        with self._open(req) as resp:
            if resp.status != 200:
                raise failure(resp.status, decode(resp.read()))
            length = resp.headers.get("Content-Length")
            advance = started(int(length) if length and length.isdigit() else None)
            written = 0
            while chunk := resp.read(CHUNK):
                sink.write(chunk)
                written += len(chunk)
                advance(len(chunk))
            return written

    def get(self, path: str, query: Query | None = None) -> Any:
        """GET that must answer 200: its payload."""
        return expect(self.call("GET", path, query=query), 200)


def decode(raw: bytes) -> Any:
    """A body as JSON when it is JSON, else as text (None when empty)."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def expect(reply: Reply, *statuses: int) -> Any:
    """The reply's payload when its status is one of `statuses`, else its error as a
    CliError."""
    if reply.status not in statuses:
        raise failure(reply.status, reply.payload)
    return reply.payload


# Error types the invoke route gives a call that ran and failed (the function's fault).
FUNCTION_FAILURES = frozenset({"application_error", "timeout"})


def exit_code(status: int, error_type: str | None = None) -> ExitCode:
    """The exit status of an HTTP error status (errors.py lists them)."""
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 404:
        return ExitCode.NOT_FOUND
    if error_type in FUNCTION_FAILURES:
        return ExitCode.FUNCTION_FAILED
    return ExitCode.ERROR


def failure(status: int, payload: Any) -> CliError:
    """The gateway's error envelope (`{"error": {"message", "field"}}`, or OpenWhisk's
    `{"error": "..."}`) as one line, with its exit code."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        where = f" (field: {error['field']})" if error.get("field") else ""
        if error.get("activation_id"):
            where += f" (activation {error['activation_id']})"
        kind = error.get("type") if isinstance(error.get("type"), str) else None
        return CliError(f"error {status}: {error.get('message')}{where}", exit_code(status, kind))
    text = error if isinstance(error, str) else payload
    line = " ".join(str(text).split())  # one line, whatever the body held
    return CliError(f"error {status}: {shorten(line)}", exit_code(status))


def shorten(text: str, width: int = 300) -> str:
    """At most `width` characters of an error body."""
    return text if len(text) <= width else text[: width - 1] + "…"
