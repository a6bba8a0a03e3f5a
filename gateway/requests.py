"""Reading request bodies: one size-capped reader and one strict JSON parser for every route.

Limits (docs/api.md, "Request limits"):

- A body's size is capped per route (`body_limit_for`): invoke events, trigger fires and
  webhooks `max_event_bytes` (6 MiB), a deploy `max_body_bytes` (72 MiB), an object put
  `max_object_bytes` (32 MiB), anything else `SMALL_BODY_BYTES` (1 MiB). A `Content-Length`
  over the cap is refused before a byte is read; a chunked body as soon as it passes it.
- A body must arrive within `BODY_GRACE_S` plus one second per `MIN_BODY_BYTES_PER_S` of
  the route's cap (a 408 otherwise): a client trickling bytes holds nothing for ever.
- JSON must be UTF-8, nest at most `MAX_JSON_DEPTH` arrays/objects deep, hold only finite
  numbers (`NaN`, `Infinity` and numbers that overflow a double, `1e999999`, are not JSON)
  and no string with a lone UTF-16 surrogate (it could not be stored or sent on).

Every refusal is a 400 naming the field `body` (408 for a body that never arrives).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.config import Config
from gateway.errors import ApiError, bad_request
from gateway.keys import CONFIG
from gateway.large_json import parse_large

MAX_JSON_DEPTH = 64
SMALL_BODY_BYTES = 2**20
READ_CHUNK = 256 * 1024
# Parsing a big body takes a while: do it off the event loop so other calls go on.
PARSE_IN_THREAD_BYTES = 256 * 1024
# A body must arrive at this rate at least (after a grace period): a client that trickles
# bytes cannot hold a request open for ever.
BODY_GRACE_S = 10.0
MIN_BODY_BYTES_PER_S = 256 * 1024

# (method, route template) -> its body cap. A route not listed gets SMALL_BODY_BYTES.
BODY_LIMITS: dict[tuple[str, str], Callable[[Config], int]] = {
    ("PUT", "/v1/functions/{name}"): lambda c: c.max_body_bytes,
    ("POST", "/v1/functions/{name}/invoke"): lambda c: c.max_event_bytes,
    ("POST", "/v1/triggers/{name}/fire"): lambda c: c.max_event_bytes,
    ("POST", "/v1/hooks/{token}"): lambda c: c.max_event_bytes,
    ("PUT", "/v1/buckets/{bucket}/objects/{key}"): lambda c: c.max_object_bytes,
    ("PUT", "/api/v1/namespaces/{namespace}/actions/{name}"): lambda c: c.max_body_bytes,
    ("POST", "/api/v1/namespaces/{namespace}/actions/{name}"): lambda c: c.max_event_bytes,
    ("POST", "/api/v1/namespaces/{namespace}/triggers/{name}"): lambda c: c.max_event_bytes,
    **{
        (method, route): lambda c: c.max_event_bytes
        for route in (
            "/web/{tenant}/{function}",
            "/web/{tenant}/{function}/{path:.*}",
            "/api/v1/web/{namespace}/{package}/{action}",
            "/api/v1/web/{namespace}/{package}/{action}/{path:.*}",
        )
        for method in ("POST", "PUT", "PATCH", "DELETE")
    },
}

BODY = web.RequestKey("body", bytes)

# What the depth scan cuts away: a JSON string (escapes included), a run of anything but
# brackets and quotes, or an unterminated string (the rest of the text: linear, and not
# JSON anyway). Only brackets outside strings are left.
_SKELETON = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[^\[\]{}"]+|"[\s\S]*')
_SQUARE = str.maketrans("{}", "[]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# --- pure -------------------------------------------------------------------------------


def body_limit_for(method: str, route: str, config: Config) -> int:
    """The body cap of a route template (`/v1/functions/{name}`) and method."""
    limit = BODY_LIMITS.get((method, route))
    return SMALL_BODY_BYTES if limit is None else limit(config)


def too_large(limit: int) -> ApiError:
    """The 400 for a body over its route's cap."""
    return bad_request(f"the request body is over this endpoint's {limit} byte limit", "body")


def unreadable(exc: Exception) -> ApiError:
    """The 400 for a body the HTTP layer could not read (bad chunking, bad gzip, ...)."""
    return bad_request(f"the request body could not be read: {exc}", "body")


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON text nested deeper than `limit`, without recursion (so without limit).

    Strings are cut out first (brackets in them do not nest), leaving a bracket skeleton.
    Each `replace("[]", "")` pass then removes every innermost pair, so a balanced skeleton
    empties in exactly as many passes as it nests deep; `limit + 1` opening brackets in a
    row show the depth at once. All of it runs in C: fast enough for a 6 MiB event.
    Unbalanced brackets are left to the JSON parser to refuse.
    """
    if text.count("[") + text.count("{") <= limit:
        return  # cannot be deeper: skip the scan
    skeleton = _SKELETON.sub("", text).translate(_SQUARE)
    run = "[" * (limit + 1)
    for _ in range(limit + 1):  # pass k sees what nests deeper than k
        if not skeleton:
            return  # emptied within the limit (or only brackets inside strings)
        if run in skeleton:
            break
        shorter = skeleton.replace("[]", "")
        if shorter == skeleton:
            return  # unbalanced: not JSON, the parser refuses it
        skeleton = shorter
    raise bad_request(f"the body nests arrays/objects deeper than {limit} levels", "body")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


# One decoder for every body: `json.loads` with hooks builds a new one (and its scanner)
# per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def parse_json(raw: bytes) -> Any:
    """Strict JSON from a request body, or a 400 naming `body`. Empty is not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"the body is not UTF-8: {exc.reason} at byte {exc.start}", "body"
        ) from None
    check_depth(text)
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it; the decoder does not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except ValueError as exc:  # JSONDecodeError, and the hooks' refusals
        raise bad_request(f"the body is not valid JSON: {exc}", "body") from None
    except RecursionError:  # unreachable after check_depth; never a 500 all the same
        raise bad_request("the body nests too deep", "body") from None
    if _SURROGATE_ESCAPE.search(text):
        try:  # a lone surrogate (`"\ud800"`) cannot be stored or sent on as UTF-8
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request(
                "the body has a string with a lone UTF-16 surrogate", "body"
            ) from None
    return value


def reject_unknown(
    body: dict[str, Any], allowed: set[str] | frozenset[str], prefix: str = ""
) -> None:
    """A 400 naming the first field of `body` that is not in `allowed`."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        field = f"{prefix}{unknown[0]}"
        raise bad_request(f"unknown field {field!r}", field)


# --- I/O --------------------------------------------------------------------------------


def body_limit(request: web.Request) -> int:
    """This request's body cap, by its route."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    return body_limit_for(request.method, route, request.app[CONFIG])


def check_content_length(request: web.Request) -> None:
    """Refuse a declared body over the route's cap before reading any of it."""
    limit = body_limit(request)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)


async def read_body(request: web.Request) -> bytes:
    """The raw body, read at most once, refused as soon as it passes the route's cap."""
    if BODY in request:
        return request[BODY]
    limit = body_limit(request)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    content = request.content
    if declared is not None and declared <= READ_CHUNK and content.is_eof():
        # A small body that has fully arrived (the usual invoke event came in with its
        # head): taken in one step, without a timer or a buffer to copy it through.
        try:
            body = content.read_nowait()
        except web.RequestPayloadError as exc:  # a gzip body that is not gzip, ...
            raise unreadable(exc) from None
        if len(body) > limit:  # decompressed (Content-Encoding): capped as below
            raise too_large(limit)
        request[BODY] = body
        return body
    # Copied in as it arrives, and handed over without a final copy: joining 64 MiB of
    # chunks at the end would stop the event loop for tens of milliseconds.
    chunks = io.BytesIO()
    size = 0
    try:
        async with asyncio.timeout(BODY_GRACE_S + limit / MIN_BODY_BYTES_PER_S):
            async for chunk in content.iter_chunked(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.write(chunk)
    except TimeoutError:
        raise ApiError(408, "the request body did not arrive in time", field="body") from None
    except web.RequestPayloadError as exc:  # bad chunking, a gzip body that is not gzip, ...
        raise unreadable(exc) from None
    body = request[BODY] = chunks.getvalue()
    return body


async def json_body(request: web.Request, *, empty: Any = None) -> Any:
    """The body as strict JSON; an empty body is `empty` (a 400 when that is None)."""
    raw = await read_body(request)
    if not raw.strip():
        if empty is None:
            raise bad_request("the body must be JSON; it is empty", "body")
        return empty
    if len(raw) > PARSE_IN_THREAD_BYTES:
        # A thread alone does not free the loop of a long C call: long strings go in pieces.
        return await asyncio.to_thread(parse_large, raw, parse_json)
    return parse_json(raw)


async def json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object, or a 400 naming `body` (`{}` for an empty body if allowed)."""
    value = await json_body(request, empty={} if empty_ok else None)
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object", "body")
    return value
