"""A fake kube-apiserver over HTTP for the Kubernetes driver and node provider tests.

A small aiohttp server on 127.0.0.1 plays kube-apiserver: it answers with the recorded
objects in tests/fixtures/k8s/ (Pod, PodList, NodeList and Status objects in the API's own
shapes) and records every request. The driver talks to it through a real
`kubernetes.client.ApiClient`, so the client's URL building, serialisation and error
handling are all exercised.

The recorded pods have cluster IPs (10.244.x.x). Tests inject a readiness probe (`Probe`)
so nothing ever connects there; the one test of the real HTTP probe rewrites the pod IP to
127.0.0.1 first.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes.client import ApiClient, Configuration

from invoker.drivers.base import INSTANCE_LABEL, MANAGED_LABEL, ContainerSpec
from invoker.drivers.kubernetes import KubernetesDriver
from invoker.drivers.kubernetes_pods import KubernetesDriverConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s"
NS = "nimbus-functions"
OWNER = "n3f9a1c2b7d4e"
INSTANCE = "2f9d1c0a7b6e4d3c9a8b7c6d5e4f3a2b"
POD = "nimbus-2f9d1c0a-1-7f3c9a"  # the name the recorded pod objects carry
BIG_POD = "nimbus-2f9d1c0a-2-0c41d7"


def fixture(name: str) -> dict[str, Any]:
    """A recorded API object from tests/fixtures/k8s/."""
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


# --- a fake kube-apiserver ------------------------------------------------------


@dataclass
class Request:
    """One request the fake API received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


def _selected(labels: dict[str, str], selector: str) -> bool:
    """The equality-based label selector subset: `k`, `k=v`, `k==v`, `k!=v`, comma-joined."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class FakeKubeApi:
    """Serves recorded responses and records what the client sent."""

    requests: list[Request] = field(default_factory=list)
    create_reply: tuple[int, dict[str, Any]] = field(
        default_factory=lambda: (201, fixture("pod-create-201.json"))
    )
    # Successive answers to GET pod; the last one repeats.
    reads: list[dict[str, Any]] = field(
        default_factory=lambda: [
            fixture("pod-pending-containercreating.json"),
            fixture("pod-running.json"),
        ]
    )
    existing: set[str] = field(default_factory=set)
    pod_pages: list[dict[str, Any]] = field(
        default_factory=lambda: [
            fixture("pod-list-managed-page1.json"),
            fixture("pod-list-managed-page2.json"),
        ]
    )
    nodes_reply: tuple[int, dict[str, Any]] = field(
        default_factory=lambda: (200, fixture("node-list.json"))
    )
    healthz: list[int] = field(default_factory=lambda: [200])
    vanish_after_create: bool = False
    create_delay_s: float = 0.0
    create_seen: asyncio.Event = field(default_factory=asyncio.Event)
    create_done: asyncio.Event = field(default_factory=asyncio.Event)
    read_seen: asyncio.Event = field(default_factory=asyncio.Event)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/namespaces/{ns}/pods", self.create_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.read_pod)
        app.router.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self.delete_pod)
        app.router.add_get("/api/v1/nodes", self.list_nodes)
        app.router.add_get("/healthz", self.health)
        return app

    async def _record(self, request: web.Request) -> Request:
        raw = await request.read()
        self.headers.append(dict(request.headers))
        rec = Request(
            request.method, request.path, dict(request.query), json.loads(raw) if raw else None
        )
        self.requests.append(rec)
        return rec

    def sent(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path != "/healthz"]

    async def create_pod(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        self.create_seen.set()
        await asyncio.sleep(self.create_delay_s)
        status, body = self.create_reply
        if status == 201 and not self.vanish_after_create:
            self.existing.add(rec.body["metadata"]["name"])
        self.create_done.set()
        return web.json_response(body, status=status)

    async def read_pod(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.read_seen.set()
        if request.match_info["name"] not in self.existing:
            return web.json_response(fixture("status-404-pod-not-found.json"), status=404)
        answer = self.reads[0] if len(self.reads) == 1 else self.reads.pop(0)
        return web.json_response(answer)

    async def delete_pod(self, request: web.Request) -> web.Response:
        await self._record(request)
        name = request.match_info["name"]
        if name not in self.existing:
            return web.json_response(fixture("status-404-pod-not-found.json"), status=404)
        self.existing.discard(name)
        return web.json_response(fixture("pod-delete-200.json"))

    async def list_pods(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        index = 0 if "continue" not in rec.query else 1
        page = copy.deepcopy(self.pod_pages[index])
        selector = rec.query.get("labelSelector", "")
        page["items"] = [
            p for p in page["items"] if _selected(p["metadata"].get("labels", {}), selector)
        ]
        return web.json_response(page)

    async def list_nodes(self, request: web.Request) -> web.Response:
        await self._record(request)
        status, body = self.nodes_reply
        return web.json_response(body, status=status)

    async def health(self, request: web.Request) -> web.Response:
        status = self.healthz[0] if len(self.healthz) == 1 else self.healthz.pop(0)
        return web.json_response({"ok": status == 200}, status=status)


@dataclass
class Cluster:
    """The running fake API, a real ApiClient bound to it, and its port."""

    api: FakeKubeApi
    client: ApiClient
    port: int


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """A fresh fake kube-apiserver on a free port of 127.0.0.1."""
    api = FakeKubeApi()
    runner = web.AppRunner(api.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    client = ApiClient(configuration)
    try:
        yield Cluster(api, client, port)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        await runner.cleanup()


class Probe:
    """An injected readiness probe: answers from a script, remembers what it was asked."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers) or [True]
        self.asked: list[str] = []

    async def __call__(self, address: str) -> bool:
        self.asked.append(address)
        return self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)


FAST = KubernetesDriverConfig(
    start_timeout_s=5.0, poll_initial_s=0.01, poll_max_s=0.05, probe_interval_s=0.01
)


def spec(name: str = POD, **overrides: Any) -> ContainerSpec:
    """A typical function container, bound to worker-b."""
    fields: dict[str, Any] = {
        "name": name,
        "runtime": "python:3.11",
        "memory_mb": 256,
        "cpus": 0.5,
        "labels": {
            MANAGED_LABEL: OWNER,
            INSTANCE_LABEL: INSTANCE,
            "io.nimbus.tenant": "acme",
            "io.nimbus.function": "hello",
            "io.nimbus.version": "1",
        },
        "env": {"GREETING": "hi"},
        "node": "worker-b",
    }
    fields.update(overrides)
    return ContainerSpec(**fields)


def driver(
    cluster: Cluster, probe: Probe | None = None, config: KubernetesDriverConfig = FAST
) -> KubernetesDriver:
    """The driver on `cluster`, with an injected probe (ready at once by default)."""
    return KubernetesDriver(cluster.client, config=config, readiness=probe or Probe(True))
