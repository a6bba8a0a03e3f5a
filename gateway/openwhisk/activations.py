"""`/api/v1/namespaces/{ns}/activations`: list, get one, its `/logs` and its `/result`.

OpenWhisk shows an activation once it has ended: calls still queued or running are
absent from listings and answer 404, here too. A listing reads the native history
newest first, a page at a time, and stops after `MAX_SCANNED` records (so `skip` and
`count` cost a bounded amount of work).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.keys import PLATFORM
from gateway.openwhisk.common import facts_by_name, facts_of, tenant_of
from gateway.openwhisk.errors import bad_request, not_found
from gateway.openwhisk.params import Window, flag, integer, window
from gateway.openwhisk.records import (
    UNFINISHED,
    ActionFacts,
    epoch_ms,
    log_lines,
    record,
    response_of,
    summary,
)
from gateway.schemas import FUNCTION_NAME
from invoker.api import Activation
from invoker.store.base import Store

routes = web.RouteTableDef()

ACTIVATIONS = "/api/v1/namespaces/{namespace}/activations"
ACTIVATION = ACTIVATIONS + "/{id}"
PAGE = 500
PAGE_BYTES = 2**20
MAX_SCANNED = 10_000


def _since_upto(request: web.Request) -> tuple[int | None, int | None]:
    return integer(request.query, "since", None), integer(request.query, "upto", None)


def _name(request: web.Request) -> str | None:
    name = request.query.get("name") or None
    if name is not None:
        name = name.strip("/").rpartition("/")[2]  # `/ns/name` and `name` alike
        if not FUNCTION_NAME.fullmatch(name):
            raise bad_request(f"The name filter {name[:64]!r} is not an action name.")
    return name


async def ended(
    store: Store,
    tenant: str,
    name: str | None,
    times: tuple[int | None, int | None],
    wanted: int | None,
) -> list[Activation]:
    """The tenant's ended activations within `times` (since, upto: epoch ms, as the
    records show their start), newest first; at most
    `wanted` (None: all of the first `MAX_SCANNED` records)."""
    since, upto = times
    found: list[Activation] = []
    before: int | None = None
    scanned = 0
    while scanned < MAX_SCANNED:
        page = await store.list_activations_page(tenant, name, PAGE, before, PAGE_BYTES)
        for activation in page.activations:
            scanned += 1
            moment = epoch_ms(activation.start or activation.end)
            if activation.status in UNFINISHED:
                continue
            if (since is not None and moment < since) or (upto is not None and moment > upto):
                continue
            found.append(activation)
            if wanted is not None and len(found) >= wanted:
                return found
        if page.next_seq is None:
            break
        before = page.next_seq
    return found


@routes.get(ACTIVATIONS)
async def list_activations(request: web.Request) -> web.Response:
    """Newest first: `name`, `limit`, `skip`, `since`, `upto` (epoch ms), `docs`, `count`."""
    tenant = tenant_of(request)
    paging: Window = window(request.query)
    docs = flag(request.query, "docs")
    if paging.count and docs:
        raise bad_request("The parameters 'count' and 'docs' are mutually exclusive.")
    store = request.app[PLATFORM].store
    wanted = None if paging.count else paging.skip + paging.limit
    found = await ended(store, tenant, _name(request), _since_upto(request), wanted)
    if paging.count:
        return web.json_response({"activations": paging.counted(found)})
    facts = facts_by_name(await store.list_functions(tenant))
    shape = record if docs else summary
    entries: list[dict[str, Any]] = [shape(a, facts.get(a.function)) for a in paging.page(found)]
    return web.json_response(entries)


async def _ended_one(request: web.Request) -> Activation:
    tenant = tenant_of(request)
    found = await request.app[PLATFORM].store.get_activation(tenant, request.match_info["id"])
    if found is None or found.status in UNFINISHED:
        raise not_found()
    return found


async def _facts(request: web.Request, activation: Activation) -> ActionFacts | None:
    """What the activation's action (if it still exists) tells its record."""
    stored = await request.app[PLATFORM].function(activation.tenant, activation.function)
    return facts_of(stored) if stored is not None else None


@routes.get(ACTIVATION)
async def get_activation(request: web.Request) -> web.Response:
    """One ended activation, as OpenWhisk's record."""
    found = await _ended_one(request)
    return web.json_response(record(found, await _facts(request, found)))


@routes.get(ACTIVATION + "/logs")
async def get_logs(request: web.Request) -> web.Response:
    """`{"logs": [...]}` in OpenWhisk's line format."""
    found = await _ended_one(request)
    return web.json_response({"logs": log_lines(found, await _facts(request, found))})


@routes.get(ACTIVATION + "/result")
async def get_result(request: web.Request) -> web.Response:
    """The activation's `response`: status, statusCode, success, result."""
    return web.json_response(response_of(await _ended_one(request)))
