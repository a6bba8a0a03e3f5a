"""Tenants: created, listed and deleted by the admin; each starts with one API key shown once.

A tenant's own keys (rotation) are in `gateway/routes/keys.py`.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.auth import ADMIN_TENANT, TENANT_NAME, hash_key, new_key
from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import require_admin
from gateway.openwhisk.auth import mint_credential
from gateway.requests import json_object, reject_unknown
from gateway.schemas import TENANT_FIELDS
from gateway.tenant_lifecycle import delete_tenant as delete_everything
from gateway.tenant_lifecycle import purge_leftovers

routes = web.RouteTableDef()


@routes.post("/v1/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    """Admin only: `{"name"}` -> 201 `{"name", "api_key", "openwhisk"}`: the API key and an
    OpenWhisk credential (`{"uuid", "key", "auth"}`, itself one of the tenant's keys), never
    shown again."""
    require_admin(request)
    body = await json_object(request)
    reject_unknown(body, TENANT_FIELDS)
    name = body.get("name")
    if not isinstance(name, str) or not TENANT_NAME.fullmatch(name):
        raise bad_request(
            "name must be 1-63 lowercase letters, digits or '-', starting with a letter", "name"
        )
    if name == ADMIN_TENANT:
        raise bad_request(f"{ADMIN_TENANT!r} is reserved", "name")
    key = new_key()
    if not await request.app[PLATFORM].store.create_tenant(name, hash_key(key)):
        raise ApiError(409, f"tenant {name!r} exists", field="name")
    await purge_leftovers(request.app, name)  # before its key exists outside this request
    credential = await mint_credential(request.app[PLATFORM].store, name, time.time())
    payload: dict[str, Any] = {"name": name, "api_key": key}
    if credential is not None:  # None: deleted already by another request
        payload["openwhisk"] = credential.to_json()
    return web.json_response(payload, status=201)


@routes.get("/v1/tenants")
async def list_tenants(request: web.Request) -> web.Response:
    """Admin only: every tenant's name and created time (never a key)."""
    require_admin(request)
    found = await request.app[PLATFORM].store.list_tenants()
    return web.json_response({"tenants": [t.to_json() for t in found]})


@routes.delete("/v1/tenants/{name}")
async def delete_tenant(request: web.Request) -> web.Response:
    """Admin only: delete a tenant and everything it owns (usage records stay): 204."""
    require_admin(request)
    name = request.match_info["name"]
    if not TENANT_NAME.fullmatch(name):
        raise bad_request("name must be a tenant name", "name")
    if not await delete_everything(request.app, name):
        raise not_found(f"tenant {name!r}")
    return web.Response(status=204)
