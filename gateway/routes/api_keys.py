"""A tenant's own API keys: create a second one, list them, revoke one (key rotation).

Only a tenant's API key manages keys: the admin key is the operator's (set at `serve`), and
a function's activation token must expire, not mint a key that never does. Keys are shown
once and stored as their SHA-256, as at tenant creation.
"""

from __future__ import annotations

import time

from aiohttp import web

from gateway.auth import Caller, hash_key, new_key
from gateway.errors import ApiError, not_found
from gateway.keys import PLATFORM
from gateway.middleware import caller
from invoker.store.tenants import MAX_KEYS_PER_TENANT, LastKeyError, TooManyKeysError

routes = web.RouteTableDef()


def _key_holder(request: web.Request) -> Caller:
    """The caller, who must hold one of its tenant's API keys."""
    who = caller(request)
    if who.admin:
        raise ApiError(403, "the admin key is the operator's; tenants rotate their own keys")
    if who.via_token:
        raise ApiError(403, "an activation token cannot manage API keys; use an API key")
    return who


@routes.post("/v1/tenants/self/keys")
async def create_key(request: web.Request) -> web.Response:
    """Another key for the caller's tenant: 201 `{"key_id", "api_key", "created"}`, shown once."""
    who = _key_holder(request)
    key = new_key()
    try:
        info = await request.app[PLATFORM].store.add_key(who.tenant, hash_key(key), time.time())
    except TooManyKeysError:
        raise ApiError(
            409, f"a tenant holds at most {MAX_KEYS_PER_TENANT} keys; revoke one first"
        ) from None
    if info is None:  # the tenant was deleted under this request
        raise ApiError(401, "invalid API key")
    return web.json_response({**info.to_json(), "api_key": key}, status=201)


@routes.get("/v1/tenants/self/keys")
async def list_keys(request: web.Request) -> web.Response:
    """The caller's tenant's keys: ids and created times, never the keys."""
    who = _key_holder(request)
    found = await request.app[PLATFORM].store.list_keys(who.tenant)
    return web.json_response({"keys": [k.to_json() for k in found]})


@routes.delete("/v1/tenants/self/keys/{key_id}")
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke one of the caller's tenant's keys: 204; 409 for its last key."""
    who = _key_holder(request)
    key_id = request.match_info["key_id"]
    platform = request.app[PLATFORM]
    try:
        revoked = await platform.store.revoke_key(who.tenant, key_id)
    except LastKeyError:
        raise ApiError(409, "this is the tenant's last key; create another first") from None
    if revoked is None:
        raise not_found(f"key {key_id[:64]!r}")
    platform.forget_keys([revoked])  # other gateways: within KEY_CACHE_TTL_S
    return web.Response(status=204)
