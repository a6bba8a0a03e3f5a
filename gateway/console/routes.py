"""`GET /console` and `GET /console/{path}`: the console's files, public (no API key).

The page itself holds no data: the browser's script calls the API with the key the user
pasted, so serving these files without a key reveals nothing.
"""

from __future__ import annotations

from aiohttp import web

from gateway.console.assets import Asset, load_assets, resolve
from gateway.errors import not_found

CONSOLE_ASSETS = web.AppKey("console_assets", dict[str, Asset])
PATHS = ("/console", "/console/{path:.*}")
PREFIX = "/console"


def is_console_path(path: str) -> bool:
    """Whether a request path is the console's (served without an API key)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


async def console_file(request: web.Request) -> web.Response:
    """One static file (the index for `/console` and `/console/`), 304 when unchanged."""
    table: dict[str, Asset] = request.app[CONSOLE_ASSETS]
    asset = resolve(table, request.match_info.get("path", ""))
    if asset is None:
        raise not_found("console file")
    headers = asset.headers()
    if asset.matches(request.headers.get("If-None-Match")):
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers=headers)


def setup(app: web.Application) -> None:
    """Read the console's files once and add its routes (GET, with HEAD) to the app."""
    app[CONSOLE_ASSETS] = load_assets()
    for path in PATHS:
        app.router.add_get(path, console_file)
