"""Per-tenant limits: the admin sets them, a tenant can read its own."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from gateway.auth import TENANT_NAME
from gateway.errors import ApiError, bad_request
from gateway.keys import PLATFORM
from gateway.middleware import caller, require_admin
from gateway.quotas import QUOTAS
from gateway.requests import json_object
from invoker.tenant_limits import LIMIT_FIELDS, TenantLimits, resolve

routes = web.RouteTableDef()

MAX_LIMIT = 1_000_000  # far above what one platform serves; keeps the numbers sane
INTEGER_FIELDS = ("concurrency", "burst", "backlog")


def _integer(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise bad_request(f"{field} must be a whole number from 1 to {MAX_LIMIT}, or null", field)
    return value


def _rate(body: dict[str, Any], field: str = "rate_per_s") -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_LIMIT
    ):
        raise bad_request(f"{field} must be a number above 0, at most {MAX_LIMIT}, or null", field)
    return float(value)


def parse_limits(body: dict[str, Any]) -> TenantLimits:
    """A PUT body as limits: every field optional, null (or absent) = the platform default."""
    unknown = sorted(set(body) - set(LIMIT_FIELDS))
    if unknown:
        raise bad_request(
            f"unknown field {unknown[0]!r}; limits are {', '.join(LIMIT_FIELDS)}", unknown[0]
        )
    ints = {field: _integer(body, field) for field in INTEGER_FIELDS}
    return TenantLimits(rate_per_s=_rate(body), **ints)


def _tenant_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not TENANT_NAME.fullmatch(name):
        raise bad_request("name must be a tenant name", "name")
    return name


async def _view(request: web.Request, tenant: str) -> dict[str, Any]:
    """The tenant's limits as stored, as enforced, and how much of its backlog is used."""
    store = request.app[PLATFORM].store
    own = await store.get_tenant_limits(tenant)
    if own is None:
        raise ApiError(404, f"tenant {tenant!r} not found")
    return {
        "tenant": tenant,
        **own.to_json(),
        "effective": resolve(own, request.app[QUOTAS].defaults).to_json(),
        "backlog_used": await store.queue_backlog(tenant),
        "dropped_trigger_events": await store.dropped_events(tenant),
    }


@routes.get("/v1/tenants/{name}/limits")
async def get_limits(request: web.Request) -> web.Response:
    """The admin, or the tenant itself: its limits (null = platform default) and usage."""
    who = caller(request)
    tenant = _tenant_name(request)
    if not who.admin and who.tenant != tenant:
        raise ApiError(404, f"tenant {tenant!r} not found")  # others' tenants do not exist
    return web.json_response(await _view(request, tenant))


@routes.put("/v1/tenants/{name}/limits")
async def put_limits(request: web.Request) -> web.Response:
    """Admin only: replace a tenant's limits; they apply on this gateway at once."""
    require_admin(request)
    tenant = _tenant_name(request)
    limits = parse_limits(await json_object(request))
    if not await request.app[QUOTAS].put(tenant, limits):
        raise ApiError(404, f"tenant {tenant!r} not found")
    return web.json_response(await _view(request, tenant))
