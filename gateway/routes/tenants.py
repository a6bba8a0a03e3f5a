"""Tenants: created by the admin, each with one API key shown once."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import ADMIN_TENANT, TENANT_NAME, hash_key, new_key
from gateway.errors import ApiError, bad_request
from gateway.keys import PLATFORM
from gateway.middleware import require_admin
from gateway.requests import json_object

routes = web.RouteTableDef()


@routes.post("/v1/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    """Admin only: `{"name"}` -> 201 `{"name", "api_key"}`; the key is never shown again."""
    require_admin(request)
    body = await json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not TENANT_NAME.match(name):
        raise bad_request(
            "name must be 1-63 lowercase letters, digits or '-', starting with a letter", "name"
        )
    if name == ADMIN_TENANT:
        raise bad_request(f"{ADMIN_TENANT!r} is reserved", "name")
    key = new_key()
    if not await request.app[PLATFORM].store.create_tenant(name, hash_key(key)):
        raise ApiError(409, f"tenant {name!r} exists", field="name")
    return web.json_response({"name": name, "api_key": key}, status=201)
