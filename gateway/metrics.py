"""HTTP request metrics and the /metrics endpoint.

With `nimbus serve --workers N` every worker has a registry of its own; the worker that
takes a scrape asks the others for theirs (`Peers`, wired by `gateway/workers.py`) and
answers for the whole gateway: counters and histograms summed series by series, gauges
one series per worker (a `worker` label). All of it happens at scrape time: a call moves
the same in-process series as with one worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from gateway.keys import CONFIG
from gateway.middleware import Handler, require_admin

REGISTRY = web.AppKey("registry", CollectorRegistry)
HTTP_DURATION = web.AppKey("http_duration", Histogram)
HTTP_CHILDREN = web.AppKey("http_children", dict)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Families whose workers' series add up to the gateway's; any other kind (gauges) says
# something about one worker, and is kept per worker.
SUMMED = frozenset({"counter", "histogram", "summary"})
WORKER_LABEL = "worker"

routes = web.RouteTableDef()


@dataclasses.dataclass(frozen=True)
class Peers:
    """How this worker reaches the other workers' registries (`gateway/workers.py`).

    `handed_over(request)`: the scrape is another worker's, to answer with this worker's
    own series only (OpenMetrics text, which keeps each family whole). `scrape(request)`:
    every other worker's OpenMetrics text by worker label, or an `ApiError` (503) when
    one does not answer (a partial sum would look like a counter reset).
    """

    worker: str
    handed_over: Callable[[web.Request], bool]
    scrape: Callable[[web.Request], Awaitable[dict[str, str]]]


PEERS = web.AppKey("metrics_peers", Peers)


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


def merged(by_worker: Mapping[str, Iterable[Metric]]) -> list[Metric]:
    """PURE: the gateway's families from its workers' ones.

    Counters, histograms and summaries are summed sample by sample (a `_created` sample
    takes the earliest); every other family keeps each worker's series apart under a
    `worker` label.
    """
    out: dict[str, Metric] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for worker, families in by_worker.items():
        for family in families:
            into = out.get(family.name)
            if into is None:
                into = Metric(family.name, family.documentation, family.type, family.unit)
                out[family.name] = into
            if family.type not in SUMMED:
                into.samples.extend(
                    Sample(s.name, {**s.labels, WORKER_LABEL: worker}, s.value)
                    for s in family.samples
                )
                continue
            totals = sums.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                before = totals.get(key)
                if before is None:
                    totals[key] = sample.value
                elif sample.name.endswith("_created"):
                    totals[key] = min(before, sample.value)
                else:
                    totals[key] = before + sample.value
    for name, totals in sums.items():
        out[name].samples = [Sample(n, dict(labels), v) for (n, labels), v in totals.items()]
    return list(out.values())


class _Families(Collector):
    """Families already gathered, for the exposition functions."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _whole_gateway(own: tuple[str, list[Metric]], others: dict[str, str]) -> bytes:
    """The text exposition of every worker's series merged (CPU work: run off the loop)."""
    by_worker = {own[0]: own[1]}
    for worker, text in others.items():
        by_worker[worker] = list(text_string_to_metric_families(text))  # type: ignore[no-untyped-call]
    return generate_latest(_Families(merged(by_worker)))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition of every series (admin key unless made public)."""
    if not request.app[CONFIG].public_metrics:
        require_admin(request)
    registry = request.app[REGISTRY]
    peers = request.app.get(PEERS)
    if peers is None:
        body = generate_latest(registry)
    elif peers.handed_over(request):
        body = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
        return web.Response(body=body, headers={"Content-Type": openmetrics.CONTENT_TYPE_LATEST})
    else:
        # Collected here, on the loop: the scrape-time gauges read the invoker's live state.
        own = (peers.worker, list(registry.collect()))
        body = await asyncio.to_thread(_whole_gateway, own, await peers.scrape(request))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
