"""HTTP request metrics and the /metrics endpoint."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

from gateway.keys import CONFIG
from gateway.middleware import Handler, require_admin

REGISTRY = web.AppKey("registry", CollectorRegistry)
HTTP_DURATION = web.AppKey("http_duration", Histogram)
HTTP_CHILDREN = web.AppKey("http_children", dict)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

routes = web.RouteTableDef()


def http_histogram(registry: CollectorRegistry) -> Histogram:
    """Request durations by method, route template (bounded) and status."""
    return Histogram(
        "nimbus_http_request_duration_seconds",
        "HTTP request handling time",
        ["method", "route", "status"],
        registry=registry,
    )


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every request under its route template, never its raw path (bounded labels)."""
    start = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    histogram = request.app[HTTP_DURATION]
    method = request.method if request.method in METHODS else "OTHER"  # bounded labels
    key = (method, route, response.status)
    # The labelled child, kept: `labels()` takes a lock and builds a tuple on every call.
    children = request.app[HTTP_CHILDREN]
    child = children.get(key)
    if child is None:
        child = children[key] = histogram.labels(method, route, str(response.status))
    child.observe(time.perf_counter() - start)
    return response


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition of every series (admin key unless made public)."""
    if not request.app[CONFIG].public_metrics:
        require_admin(request)
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
