"""Per-call billing reports for tenants, and the provider's view for the admin."""

from __future__ import annotations

import time
from decimal import Decimal

from aiohttp import web

from gateway.billing import Report, build_report, build_reports_by_tenant
from gateway.billing_economics import NodeUsage, economics, provisioned_seconds
from gateway.billing_query import (
    BillingQueryError,
    free_tier_window_start,
    parse_group_by,
    parse_range,
)
from gateway.errors import bad_request
from gateway.keys import CONFIG, PLATFORM
from gateway.middleware import caller, require_admin

routes = web.RouteTableDef()


def _query(request: web.Request) -> tuple[float, float, str]:
    try:
        start, end = parse_range(
            request.query.get("from"), request.query.get("to"), now=time.time()
        )
        group_by = parse_group_by(request.query.get("group_by"))
    except BillingQueryError as exc:
        raise bad_request(str(exc), exc.field) from None
    return start, end, group_by


FORMATS = ("json", "csv")


def _wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise bad_request(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", "format")
    return "text/csv" in request.headers.get("Accept", "") or fmt == "csv"


def _respond(request: web.Request, report: Report) -> web.Response:
    if _wants_csv(request):
        return web.Response(text=report.to_csv(), content_type="text/csv")
    return web.json_response(report.to_json())


@routes.get("/v1/billing")
async def billing(request: web.Request) -> web.Response:
    """The caller's bill for [from, to), grouped by function or day; CSV with Accept: text/csv."""
    who = caller(request)
    start, end, group_by = _query(request)
    # The free tier is a monthly allowance: earlier calls of the month use it up first.
    records = await request.app[PLATFORM].store.list_usage(
        who.tenant, free_tier_window_start(start), end
    )
    report = build_report(
        records,
        request.app[CONFIG].price_book,
        tenant=who.tenant,
        group_by=group_by,
        period_from=start,
        period_to=end,
    )
    return _respond(request, report)


@routes.get("/v1/admin/billing")
async def admin_billing(request: web.Request) -> web.Response:
    """Admin: every tenant's bill for the range."""
    require_admin(request)
    start, end, group_by = _query(request)
    records = await request.app[PLATFORM].store.list_usage(None, free_tier_window_start(start), end)
    reports = build_reports_by_tenant(
        records,
        request.app[CONFIG].price_book,
        group_by=group_by,
        period_from=start,
        period_to=end,
    )
    return web.json_response({"tenants": {t: r.to_json() for t, r in sorted(reports.items())}})


@routes.get("/v1/admin/economics")
async def admin_economics(request: web.Request) -> web.Response:
    """Admin: VM-hours and their cost, revenue, margin and utilisation for the range."""
    require_admin(request)
    start, end, _ = _query(request)
    store = request.app[PLATFORM].store
    leases = await store.node_leases(start, end)
    nodes = [
        NodeUsage(
            node_id=lease.id,
            flavor=lease.flavor,
            provisioned_s=provisioned_seconds(lease.up_at, lease.down_at, start, end),
            price_per_hour=Decimal(lease.price_per_hour),
            capacity_memory_mb=lease.memory_mb,
        )
        for lease in leases
    ]
    records = await store.list_usage(None, free_tier_window_start(start), end)
    try:
        body = economics(
            nodes, records, request.app[CONFIG].price_book, period_from=start, period_to=end
        )
    except BillingQueryError as exc:
        raise bad_request(str(exc), exc.field) from None
    return web.json_response(body)
