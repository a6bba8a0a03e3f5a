"""`ANY /api/v1/web/{namespace}/{package}/{action}[.ext][/{path}]`: OpenWhisk's web actions.

The native web route's flow (`gateway.routes.web.serve_web`: opt-in, secret, rate limits,
the call through `Operations.invoke`, the result as the response) with OpenWhisk's URL
and error shape. No credentials: the namespace in the path is the function's tenant,
and only an action exported to the web (`web-export`, natively `web: true`) answers;
any other name, package or namespace answers the same 404, so nothing can be probed.
Packages do not exist here: the package is always `default`. The extension (`.http`
when none) says how the result is rendered (`gateway.web_functions.web_response`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gateway.openwhisk.errors import NOT_FOUND, response
from gateway.routes.web import METHODS, serve_web
from gateway.web_functions import split_extension

DEFAULT_PACKAGE = "default"
WEB = "/api/v1/web/{namespace}/{package}/{action}"
PATHS = (WEB, WEB + "/{path:.*}")


def openwhisk_error(status: int, message: str, headers: Mapping[str, str]) -> web.StreamResponse:
    """A web action's failure in OpenWhisk's shape; every 404 in OpenWhisk's words, so
    a missing action reads like a hidden one."""
    return response(status, NOT_FOUND if status == 404 else message, dict(headers))


async def web_action(request: web.Request) -> web.StreamResponse:
    """One call of a web action at its OpenWhisk URL."""
    match = request.match_info
    if match["package"] != DEFAULT_PACKAGE:
        return openwhisk_error(404, NOT_FOUND, {})
    name, extension = split_extension(match["action"])
    path = match.get("path")
    return await serve_web(
        request,
        match["namespace"],
        name,
        path="" if path is None else "/" + path,
        extension=extension,
        errors=openwhisk_error,
    )


def add_routes(app: web.Application) -> None:
    """Add the web action routes: every method a web action takes (HEAD with GET)."""
    for route_path in PATHS:
        app.router.add_get(route_path, web_action)
        for method in METHODS:
            app.router.add_route(method, route_path, web_action)
