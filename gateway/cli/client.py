"""The CLI's HTTP client: one JSON call to the gateway at $NIMBUS_URL as $NIMBUS_API_KEY.

Standard library only (urllib), so the commands that talk to a gateway start quickly and
need none of the server's dependencies.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.cli.errors import CliError

DEFAULT_URL = "http://127.0.0.1:8080"
# A synchronous invoke may run 900 s (the longest function timeout) plus a cold start.
TIMEOUT_S = 960


@dataclass(frozen=True)
class Reply:
    """What the gateway answered: a JSON payload, or the body's text if not JSON."""

    status: int
    headers: dict[str, str]
    payload: Any


def call(method: str, path: str, body: Any = None, env: Mapping[str, str] = os.environ) -> Reply:
    """Send `body` (as JSON, if any) to `path` on the gateway; any HTTP status is a reply.

    Raises CliError without an API key or when the gateway cannot be reached.
    """
    url = env.get("NIMBUS_URL", DEFAULT_URL).rstrip("/") + path
    key = env.get("NIMBUS_API_KEY")
    if not key:
        raise CliError("set NIMBUS_API_KEY to your API key (make up prints the admin key)")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            raw = resp.read()
            status, headers = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    except urllib.error.URLError as exc:
        raise CliError(f"cannot reach the gateway at {url}: {exc.reason}") from exc
    return Reply(status, headers, _decode(raw))


def _decode(raw: bytes) -> Any:
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


def failure(status: int, payload: Any) -> CliError:
    """The gateway's error envelope (`{"error": {"message", "field"}}`) as one line."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        err = payload["error"]
        where = f" (field: {err['field']})" if err.get("field") else ""
        return CliError(f"error {status}: {err.get('message')}{where}")
    return CliError(f"error {status}: {payload}")
