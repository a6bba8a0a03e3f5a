"""Request middlewares: JSON errors everywhere, and who the caller is."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.auth import (
    ACTIVATION_PREFIX,
    ADMIN_TENANT,
    Caller,
    bearer_token,
    hash_key,
    is_admin_hash,
    verify_activation_token,
)
from gateway.errors import ApiError
from gateway.keys import ADMIN_HASH, CONFIG, PLATFORM, TOKEN_SECRET

log = logging.getLogger("nimbus.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/healthz"})
CALLER = web.RequestKey("caller", Caller)


def caller(request: web.Request) -> Caller:
    """The authenticated caller of this request."""
    found = request.get(CALLER)
    assert isinstance(found, Caller), "route is not behind the auth middleware"
    return found


def require_admin(request: web.Request) -> Caller:
    """The caller, who must hold the admin key."""
    who = caller(request)
    if not who.admin:
        raise ApiError(403, "this endpoint needs the admin key")
    return who


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": {...}}`` JSON; internals are logged, never sent."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPRequestEntityTooLarge as exc:
        # The contract for an oversized body is a 400 that names the field.
        return ApiError(400, f"the request body is too large: {exc.text}", field="body").response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return ApiError(exc.status, exc.reason).response(headers=dict(exc.headers))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return ApiError(500, "internal error; the platform log has the details").response()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve ``Authorization: Bearer <key>`` to a tenant; 401 without a valid key."""
    if (
        request.path in PUBLIC_PATHS
        or request.path.startswith("/v1/hooks/")
        or (request.path == "/metrics" and request.app[CONFIG].public_metrics)
    ):
        return await handler(request)
    key = bearer_token(request.headers.get("Authorization"))
    if key is None:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    if key.startswith(ACTIVATION_PREFIX):
        tenant = verify_activation_token(request.app[TOKEN_SECRET], key, time.time())
        if tenant is None:
            raise ApiError(401, "invalid or expired activation token")
        request[CALLER] = Caller(tenant=tenant)
        return await handler(request)
    hashed = hash_key(key)
    if is_admin_hash(hashed, request.app[ADMIN_HASH]):
        request[CALLER] = Caller(tenant=ADMIN_TENANT, admin=True)
        return await handler(request)
    tenant = await request.app[PLATFORM].tenant_for_key(hashed)
    if tenant is None:
        raise ApiError(401, "invalid API key")
    request[CALLER] = Caller(tenant=tenant)
    return await handler(request)
