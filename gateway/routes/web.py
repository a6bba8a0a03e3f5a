"""Web functions' public URLs: `ANY /web/{tenant}/{function}[/{path}]`, no API key.

A function answers here only when deployed with `web: true`; any other name (missing, not
web, another tenant's) answers the same 404, so names cannot be probed. A web call is
the function's tenant's call: metered and billed to it, within its rate and concurrency
limits, and rate limited per function as well (`WebLimits`), so a public URL cannot
exhaust the platform. `serve_web` is the whole flow; the OpenWhisk facade calls it for
`/api/v1/web/...` with an extension and its own error shape (gateway/openwhisk/web_actions.py).
The call itself is `Operations.invoke`, as every other entrance's: default params merged
and sequences run in the invoker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from aiohttp import web

from gateway.errors import ApiError
from gateway.keys import CONFIG, PLATFORM
from gateway.openwhisk.auth import credential_caller
from gateway.quotas import QUOTAS
from gateway.ratelimit import RateLimiter, Rates
from gateway.requests import read_body
from gateway.routes.invoke import ERROR_STATUS, result_headers
from gateway.schemas import FUNCTION_NAME
from gateway.web_functions import (
    REQUIRE_AUTH,
    SECRET_HEADER,
    WebError,
    WebLimits,
    WebRequest,
    cors_headers,
    secret_matches,
    web_args,
    web_response,
)
from invoker.api import InvokeRequest, Status, Throttled

WEB_LIMITER = web.AppKey("web_limiter", Rates)  # per function: "tenant/name"
METHODS = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS")  # and GET (with HEAD)
PATHS = ("/web/{tenant}/{function}", "/web/{tenant}/{function}/{path:.*}")

ErrorShape = Callable[[int, str, Mapping[str, str]], web.StreamResponse]
"""(status, message, headers) -> the error response, in the shape of the API serving it."""


def native_error(status: int, message: str, headers: Mapping[str, str]) -> web.StreamResponse:
    """Errors of the native route: Nimbus's JSON error shape."""
    return ApiError(status, message).response(headers=dict(headers))


def web_limits(app: web.Application) -> WebLimits:
    """The per-function limits of web calls, from the Config."""
    config = app[CONFIG]
    return WebLimits(
        rate_per_s=config.web_rate_per_s,
        burst=config.web_burst,
    )


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, int(seconds + 0.999)))}


async def serve_web(
    request: web.Request,
    tenant: str,
    name: str,
    *,
    path: str,
    extension: str | None,
    errors: ErrorShape = native_error,
) -> web.StreamResponse:
    """Serve one web call of `tenant`'s function `name`; `path` is what follows it in the
    URL, `extension` OpenWhisk's (None for the native route)."""
    app = request.app
    stored = None
    if FUNCTION_NAME.fullmatch(name):
        stored = await app[PLATFORM].function(tenant, name)
    if stored is None or not stored.spec.web:
        return errors(404, "no such web function", {})
    spec = stored.spec
    cors = cors_headers(spec.annotations, {k.lower(): v for k, v in request.headers.items()})
    extra = dict(cors or [])
    if cors is not None and request.method == "OPTIONS":
        return web.Response(status=200, headers=extra)
    # Counted before the secret is checked: nobody guesses secrets faster than the limit.
    limits = web_limits(app)
    wait = app[WEB_LIMITER].take(
        f"{tenant}/{name}", limits.rate_per_s, limits.burst, time.monotonic()
    )
    if wait > 0:
        message = f"too many web calls of this function (over {limits.rate_per_s:g}/s)"
        return errors(429, message, {**extra, **_retry_after(wait)})
    if not secret_matches(spec.web_secret_hash, request.headers.get(SECRET_HEADER)):
        return errors(401, f"this web function needs its {SECRET_HEADER} header", extra)
    if spec.annotations.get(REQUIRE_AUTH) is True and await credential_caller(request) is None:
        message = f"this web function ({REQUIRE_AUTH}: true) needs a caller's credentials"
        return errors(401, message, extra)
    try:
        app[QUOTAS].check_rate(tenant)  # the owner's own rate: web calls are its calls
    except ApiError as exc:
        return errors(exc.status, exc.message, {**extra, **exc.headers})
    body = await read_body(request)
    incoming = WebRequest(request.method, request.headers.items(), path, request.query_string, body)
    # OpenWhisk's `final` annotation: the request may not override the default params.
    final = tuple(spec.params) if spec.annotations.get("final") is True else ()
    try:
        args = web_args(incoming, raw=spec.web_raw, final=final)
    except WebError as exc:
        return errors(exc.status, exc.message, extra)
    call = InvokeRequest(activation_id=app[PLATFORM].ids.next(), function=spec, args=args)
    try:
        result = await app[PLATFORM].ops.invoke(call)
    except Throttled as exc:
        message = f"too many calls: {exc.reason}; retry later"
        return errors(429, message, {**extra, **_retry_after(exc.retry_after_s)})
    headers = {**extra, **result_headers(result)}
    if result.status is not Status.SUCCESS:
        status = ERROR_STATUS.get(result.status, 500)
        return errors(status, result.error or result.status.value, headers)
    try:
        answer = web_response(result.result, extension)
    except WebError as exc:
        return errors(exc.status, exc.message, headers)
    response = web.Response(status=answer.status, body=answer.body, headers=headers)
    for header, value in answer.headers:
        response.headers.add(header, value)
    if answer.content_type is not None:
        response.headers["Content-Type"] = answer.content_type
    return response


async def web_function(request: web.Request) -> web.StreamResponse:
    """`/web/{tenant}/{function}[/{path}]`: a web function's public URL."""
    match = request.match_info
    path = match.get("path")
    return await serve_web(
        request,
        match["tenant"],
        match["function"],
        path="" if path is None else "/" + path,
        extension=None,
    )


def setup(app: web.Application) -> None:
    """Add the web routes and their per-function rate limiter to the app."""
    app[WEB_LIMITER] = RateLimiter()
    for route_path in PATHS:
        app.router.add_get(route_path, web_function)  # HEAD rides along
        for method in METHODS:
            app.router.add_route(method, route_path, web_function)
