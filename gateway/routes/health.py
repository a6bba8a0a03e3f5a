"""Liveness."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import PLATFORM

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the gateway serves; says which container driver runs functions."""
    return web.json_response({"ok": True, "driver": request.app[PLATFORM].invoker.driver.name})
