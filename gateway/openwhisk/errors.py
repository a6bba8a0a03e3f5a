"""OpenWhisk's error shape, and the middleware that gives it to every `/api/` answer.

OpenWhisk answers errors as ``{"error": "<message>", "code": "<transaction id>"}``; the
native API's ``{"error": {"message", ...}}`` would break its clients. Handlers of the facade
raise the ordinary `ApiError` (and reuse native validators that do): the middleware here
turns every error on an `/api/` path into OpenWhisk's shape, and authenticates the caller
with HTTP Basic first (`gateway.openwhisk.auth`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, TypeVar

from aiohttp import web

from gateway.errors import ApiError
from gateway.middleware import CALLER, Handler
from gateway.openwhisk.auth import basic_caller, is_public
from invoker.store.errors import STORAGE_FULL_MESSAGE, is_storage_full

log = logging.getLogger("nimbus.openwhisk")

PREFIX = "/api/"
NOT_FOUND = "The requested resource does not exist."
CONFLICT = "Concurrent modification to resource detected."
INTERNAL = "Internal server error."
# What OpenWhisk says for aiohttp's own refusals (routing, sizes) on its paths.
_HTTP_MESSAGES = {
    404: NOT_FOUND,
    405: "Method not allowed.",
    413: "The request content was too large.",
}
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
T = TypeVar("T")


def not_found() -> ApiError:
    """404 as OpenWhisk words it."""
    return ApiError(404, NOT_FOUND)


def existing(found: T | None) -> T:
    """`found`, or OpenWhisk's 404 when the store had nothing."""
    if found is None:
        raise not_found()
    return found


def conflict() -> ApiError:
    """409 for a PUT on an existing entity without `overwrite=true`."""
    return ApiError(409, CONFLICT)


def bad_request(message: str) -> ApiError:
    """400 with OpenWhisk's plain message (no `field`: its shape has none)."""
    return ApiError(400, message)


def body(message: str) -> dict[str, Any]:
    """OpenWhisk's error body; `code` is an opaque id to quote in a support request."""
    return {"error": message, "code": secrets.token_hex(16)}


def response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An OpenWhisk error response."""
    return web.json_response(body(message), status=status, headers=headers)


def _from_http(exc: web.HTTPException) -> web.Response:
    kept = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return response(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason), kept)


@web.middleware
async def facade(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On `/api/` paths: Basic auth, and OpenWhisk's error shape for every failure.

    Sits between the native `errors` and `guard` middlewares, so a routing error (404,
    405) or a body over its cap, raised by `guard` after this, is shaped here too; the
    native `authenticate` lets `/api/` paths through to this one.
    """
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        routing_error = request.match_info.http_exception
        if routing_error is not None:
            raise routing_error
        if not is_public(request.path):
            request[CALLER] = await basic_caller(request)
        return await handler(request)
    except ApiError as exc:
        return response(exc.status, exc.message, dict(exc.headers))
    except web.RequestPayloadError as exc:
        return response(400, f"The request content was malformed: {exc}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http(exc)
    except Exception as exc:
        if is_storage_full(exc):
            log.error("storage full on %s %s: %s", request.method, request.path, exc)
            return response(503, STORAGE_FULL_MESSAGE, {"Retry-After": "30"})
        log.exception("unhandled error on %s %s", request.method, request.path)
        return response(500, INTERNAL)
