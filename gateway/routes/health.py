"""Liveness, and the API's own description."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.keys import PLATFORM
from gateway.openapi import document

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the gateway serves; says which container driver runs functions."""
    return web.json_response({"ok": True, "driver": request.app[PLATFORM].ops.driver_name})


@routes.get("/v1/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of the API (no key needed)."""
    return web.Response(text=json.dumps(document()), content_type="application/json")
