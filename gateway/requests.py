"""Reading request bodies with clear errors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.errors import bad_request


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 naming `body`."""
    raw = await request.read()
    try:
        value = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", "body") from exc
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object", "body")
    return value
