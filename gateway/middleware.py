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
from gateway.console.routes import is_console_path
from gateway.errors import ApiError, from_http_exception
from gateway.keys import ADMIN_HASH, CONFIG, PLATFORM, TOKEN_SECRET
from gateway.openapi import unknown_query_parameter
from gateway.requests import check_content_length
from invoker.store.errors import STORAGE_FULL_MESSAGE, is_storage_full

log = logging.getLogger("nimbus.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/healthz", "/v1/openapi.json"})
# OpenWhisk's API authenticates with HTTP Basic in its own middleware (gateway/openwhisk).
OPENWHISK_PREFIX = "/api/"
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
    except web.RequestPayloadError as exc:  # a body read outside requests.read_body
        return ApiError(400, f"the request body could not be read: {exc}", field="body").response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc, request.method, request.path[:200]).response()
    except Exception as exc:
        if is_storage_full(exc):  # an operator's problem, rolled back: say so, not 500
            log.error("storage full on %s %s: %s", request.method, request.path, exc)
            full = ApiError(503, STORAGE_FULL_MESSAGE, type="platform_error")
            return full.response(headers={"Retry-After": "30"})
        log.exception("unhandled error on %s %s", request.method, request.path)
        return ApiError(500, "internal error; the platform log has the details").response()


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what no handler should see, before authentication and before any body is read.

    An unknown path is a 404 and a wrong method a 405 (with `Allow`), key or no key; a
    query parameter the route does not take is a 400 naming it; a `Content-Length` over
    the route's body cap is a 400 naming `body`.
    """
    routing_error = request.match_info.http_exception
    if routing_error is not None:
        raise routing_error
    unknown = unknown_query_parameter(request)
    if unknown is not None:
        raise ApiError(400, f"unknown query parameter {unknown!r}", field=unknown)
    check_content_length(request)
    return await handler(request)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve ``Authorization: Bearer <key>`` to a tenant; 401 without a valid key."""
    if (
        request.path in PUBLIC_PATHS
        or request.path.startswith("/v1/hooks/")
        or request.path.startswith("/web/")
        or is_console_path(request.path)  # the console's files; its data needs the key
        or request.path.startswith(OPENWHISK_PREFIX)
        or (request.path == "/metrics" and request.app[CONFIG].public_metrics)
    ):
        return await handler(request)
    key = bearer_token(request.headers.get("Authorization"))
    if key is None:
        raise ApiError(401, "missing or malformed API key: send 'Authorization: Bearer <key>'")
    if key.startswith(ACTIVATION_PREFIX):
        tenant = verify_activation_token(request.app[TOKEN_SECRET], key, time.time())
        # A token outlives nothing: once its tenant is deleted it is as invalid as a forgery.
        # (The admin's own functions belong to no stored tenant: it always exists.)
        if tenant is None or (
            tenant != ADMIN_TENANT and not await request.app[PLATFORM].tenant_is_live(tenant)
        ):
            raise ApiError(401, "invalid or expired activation token")
        request[CALLER] = Caller(tenant=tenant, via_token=True)
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
