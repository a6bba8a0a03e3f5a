"""Reading and deleting activation records.

A listing is capped by count (`limit`) and by bytes (`LIST_BUDGET_BYTES` of results, errors
and logs): when more records match, the answer carries `next`, an opaque cursor that
`?cursor=` resumes from (gateway/cursors.py), and `truncated: true` when the byte budget
rather than `limit` ended the page.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.cursors import decode_cursor, encode_cursor
from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.schemas import FUNCTION_NAME, limit_param
from invoker.store.activations import Removal

routes = web.RouteTableDef()

LIST_BUDGET_BYTES = 2**20
"""A listing stops adding records before its results, errors and logs pass 1 MiB."""
DUMP_IN_THREAD_BYTES = 256 * 1024  # a bigger answer is serialised off the event loop

_EPOCH = re.compile(r"\d+(\.\d*)?")


def _function_param(request: web.Request) -> str | None:
    function = request.query.get("function")
    if function is not None and not FUNCTION_NAME.fullmatch(function):
        raise bad_request("function must be a function name", "function")
    return function


def parse_before(raw: str | None) -> float:
    """`before`: ISO-8601 (a date, or a datetime; naive means UTC) or epoch seconds."""
    if raw is None or not raw.strip():
        raise bad_request("before is required: an ISO-8601 time or epoch seconds", "before")
    text = raw.strip()
    try:
        if _EPOCH.fullmatch(text):
            value = float(text)
        else:
            moment = datetime.fromisoformat(text)
            value = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise bad_request(
            f"not an ISO-8601 time or epoch seconds: {text[:64]!r}", "before"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise bad_request("before must be a time at or after 1970-01-01", "before")
    return value


async def _json(payload: dict[str, Any], size: int) -> web.Response:
    if size <= DUMP_IN_THREAD_BYTES:
        return web.json_response(payload)
    text = await asyncio.to_thread(json.dumps, payload)
    return web.Response(text=text, content_type="application/json")


@routes.get("/v1/activations")
async def list_activations(request: web.Request) -> web.Response:
    """The caller's newest activations, optionally of one function, a page at a time.

    `?function=&limit=&cursor=`; the answer has `next` (a cursor) when more records match.
    """
    who = caller(request)
    platform = request.app[PLATFORM]
    function = _function_param(request)
    limit = limit_param(request.query.get("limit"))
    key = await platform.cursor_key()
    before_seq = None
    if (cursor := request.query.get("cursor")) is not None:
        before_seq = decode_cursor(key, who.tenant, cursor)
        if before_seq is None:
            raise bad_request("cursor is not one this listing gave out", "cursor")
    page = await platform.store.list_activations_page(
        who.tenant, function, limit, before_seq, LIST_BUDGET_BYTES
    )
    payload: dict[str, Any] = {"activations": [a.to_json() for a in page.activations]}
    if page.next_seq is not None:
        payload["next"] = encode_cursor(key, who.tenant, page.next_seq)
    if page.truncated:
        payload["truncated"] = True
    return await _json(payload, page.size)


@routes.get("/v1/activations/{id}")
async def get_activation(request: web.Request) -> web.Response:
    """One of the caller's activations; another tenant's is as absent as a missing one."""
    who = caller(request)
    activation_id = request.match_info["id"]
    found = await request.app[PLATFORM].store.get_activation(who.tenant, activation_id)
    if found is None:
        raise not_found(f"activation {activation_id!r}")
    return web.json_response(found.to_json())


@routes.delete("/v1/activations/{id}")
async def delete_activation(request: web.Request) -> web.Response:
    """Delete one activation (its result and logs): 204. Its usage record stays (the bill)."""
    who = caller(request)
    activation_id = request.match_info["id"]
    outcome = await request.app[PLATFORM].store.delete_activation(who.tenant, activation_id)
    if outcome == Removal.MISSING:
        raise not_found(f"activation {activation_id!r}")
    if outcome == Removal.QUEUED:
        raise ApiError(409, f"activation {activation_id!r} is queued or running; it ends first")
    return web.Response(status=204)


@routes.delete("/v1/activations")
async def delete_activations(request: web.Request) -> web.Response:
    """Delete the caller's activations that started before `before` (of one `function`)."""
    who = caller(request)
    function = _function_param(request)
    before = parse_before(request.query.get("before"))
    deleted = await request.app[PLATFORM].store.delete_activations(who.tenant, function, before)
    return web.json_response({"deleted": deleted})
