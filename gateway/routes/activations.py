"""Reading activation records."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import not_found
from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.schemas import check_function_name, limit_param

routes = web.RouteTableDef()


@routes.get("/v1/activations")
async def list_activations(request: web.Request) -> web.Response:
    """The caller's newest activations, optionally of one function (`?function=&limit=`)."""
    who = caller(request)
    function = request.query.get("function")
    if function is not None:
        check_function_name(function)
    limit = limit_param(request.query.get("limit"))
    found = await request.app[PLATFORM].store.list_activations(who.tenant, function, limit)
    return web.json_response({"activations": [a.to_json() for a in found]})


@routes.get("/v1/activations/{id}")
async def get_activation(request: web.Request) -> web.Response:
    """One of the caller's activations; another tenant's is as absent as a missing one."""
    who = caller(request)
    activation_id = request.match_info["id"]
    found = await request.app[PLATFORM].store.get_activation(who.tenant, activation_id)
    if found is None:
        raise not_found(f"activation {activation_id!r}")
    return web.json_response(found.to_json())
