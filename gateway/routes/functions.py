"""Deploying, reading and deleting functions."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.deploy_memory import memory_refusal
from gateway.errors import bad_request, not_found
from gateway.keys import CONFIG, PLATFORM
from gateway.middleware import caller
from gateway.requests import json_body
from gateway.routes import versions
from gateway.schemas import check_function_name, function_draft
from invoker.api import ImageRejected
from invoker.sequences import component_problem

routes = web.RouteTableDef()


@routes.put("/v1/functions/{name}")
async def put_function(request: web.Request) -> web.Response:
    """Create (201) or update (200) a function; the body carries `version` and `code_sha256`."""
    who = caller(request)
    body = await json_body(request)
    # Off the loop: checking a zip inflates it, parsing source walks it.
    draft = await asyncio.to_thread(
        function_draft,
        who.tenant,
        request.match_info["name"],
        body,
        max_code_bytes=request.app[CONFIG].max_code_bytes,
    )
    if draft.sequence:
        # Same tenant only: steps are looked up in the caller's own functions.
        problem = await component_problem(
            who.tenant, draft.name, draft.sequence, request.app[PLATFORM].store.get_function
        )
        if problem is not None:
            raise bad_request(problem, "sequence")
    platform = request.app[PLATFORM]
    config = request.app[CONFIG]
    refusal = memory_refusal(config, platform.ops, draft.name, draft.memory_mb, "memory_mb")
    if refusal is not None:
        raise bad_request(refusal, "memory_mb")
    # A new immutable version; warm containers of earlier ones drain, so the next call
    # runs this one (an earlier one called by version or alias starts its own again).
    try:
        stored, created = await request.app[PLATFORM].ops.deploy(draft, time.time())
    except ImageRejected as exc:
        raise bad_request(str(exc), "image") from None
    return web.json_response(stored.to_json(), status=201 if created else 200)


@routes.get("/v1/functions")
async def list_functions(request: web.Request) -> web.Response:
    """The caller's functions."""
    who = caller(request)
    found = await request.app[PLATFORM].store.list_functions(who.tenant)
    return web.json_response({"functions": [f.to_json() for f in found]})


@routes.get("/v1/functions/{name}")
async def get_function(request: web.Request) -> web.Response:
    """One of the caller's functions."""
    who = caller(request)
    name = check_function_name(request.match_info["name"])
    found = await request.app[PLATFORM].store.get_function(who.tenant, name)
    if found is None:
        raise not_found(f"function {name!r}")
    return web.json_response(found.to_json())


@routes.delete("/v1/functions/{name}")
async def delete_function(request: web.Request) -> web.Response:
    """Delete a function; its containers go away."""
    who = caller(request)
    name = check_function_name(request.match_info["name"])
    if not await request.app[PLATFORM].ops.delete(who.tenant, name):
        raise not_found(f"function {name!r}")
    return web.json_response({"deleted": name})


# A function's versions and aliases are served with it (gateway/routes/versions.py).
for _sub in versions.routes:
    if isinstance(_sub, web.RouteDef):
        routes.route(_sub.method, _sub.path, **_sub.kwargs)(_sub.handler)
