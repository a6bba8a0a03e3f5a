"""A fake kube-apiserver over HTTP for the Kubernetes driver and node provider tests.

A small aiohttp server on 127.0.0.1 plays kube-apiserver: it answers with the recorded
objects in tests/fixtures/k8s/ (Pod, PodList, NodeList and Status objects in the API's own
shapes) and records every request. The driver talks to it through a real
`kubernetes.client.ApiClient`, so the client's URL building, serialisation and error
handling are all exercised.

In-place resize (KEP-1287) is played as a 1.33 API server and its kubelet behave: the
`resize` subresource merges the container's resources into the pod and bumps its
generation; the kubelet (`kubelet`) then applies it over the next reads (allocated, then
actual), or marks it Infeasible / Deferred / Error in the pod's conditions (or, as 1.32 did,
in `status.resize`), and clears those once desired and actual agree again. An older server
answers the subresource with 404, and 1.33 refuses lowering a memory limit (422);
`as_release(34)` plays 1.34, which lowers it.

The resource metrics API (metrics.k8s.io, as metrics-server serves it) answers a pod's
working set from `working_sets`; `metrics_api=False` plays a cluster without it.

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
    # In-place resize: pods kept as state (read and patched), the server, its kubelet.
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: dict[str, Any] = field(default_factory=lambda: fixture("version-1.33.json"))
    resize_subresource: bool = True
    decrease_forbidden: bool = False  # 1.33's validation
    kubelet: str = "apply"  # apply | infeasible | deferred | error | legacy-infeasible | silent
    # metrics.k8s.io: pod name -> its container's working set ("40960Ki"); absent: not scraped
    working_sets: dict[str, str] = field(default_factory=dict)
    metrics_api: bool = True

    def as_release(self, minor: int) -> None:
        """Play Kubernetes 1.`minor` (from 1.33): /version says so; 1.33 refuses to lower
        a memory limit in place, 1.34 and later lower it."""
        self.version = dict(fixture("version-1.33.json"), minor=str(minor))
        self.version["gitVersion"] = f"v1.{minor}.0"
        self.decrease_forbidden = minor == 33

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/namespaces/{ns}/pods", self.create_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.read_pod)
        app.router.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self.delete_pod)
        app.router.add_patch("/api/v1/namespaces/{ns}/pods/{name}/resize", self.resize_pod)
        app.router.add_get(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}", self.pod_metrics
        )
        app.router.add_get("/version", self.get_version)
        app.router.add_get("/version/", self.get_version)  # the client asks for this one
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
        if request.match_info["name"] in self.pods:
            pod = self.pods[request.match_info["name"]]
            self._kubelet_sync(pod)
            return web.json_response(pod)
        answer = self.reads[0] if len(self.reads) == 1 else self.reads.pop(0)
        return web.json_response(answer)

    async def pod_metrics(self, request: web.Request) -> web.Response:
        """A PodMetrics object, as metrics-server answers it."""
        await self._record(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        if not self.metrics_api:  # the group is not registered with the aggregator
            return web.json_response(fixture("status-404-no-such-resource.json"), status=404)
        if name not in self.working_sets:
            message = f'podmetrics.metrics.k8s.io "{ns}/{name}" not found'
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": message, "reason": "NotFound", "code": 404}  # fmt: skip
            return web.json_response(status, status=404)
        return web.json_response({
            "kind": "PodMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": name, "namespace": ns},
            "timestamp": "2025-09-01T10:00:00Z",
            "window": "10.052s",
            "containers": [{"name": "runtime",
                            "usage": {"cpu": "181346n", "memory": self.working_sets[name]}}],
        })  # fmt: skip

    def metrics_reads(self) -> int:
        """How many times the metrics API was asked."""
        return sum(1 for r in self.requests if r.path.startswith("/apis/metrics.k8s.io/"))

    async def get_version(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(self.version)

    async def resize_pod(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        name = request.match_info["name"]
        if not self.resize_subresource:
            return web.json_response(fixture("status-404-no-such-resource.json"), status=404)
        if name not in self.pods:
            return web.json_response(fixture("status-404-pod-not-found.json"), status=404)
        if request.content_type != "application/strategic-merge-patch+json":
            return web.json_response({"kind": "Status", "code": 415}, status=415)
        pod = self.pods[name]
        for patch in rec.body["spec"]["containers"]:
            (container,) = [c for c in pod["spec"]["containers"] if c["name"] == patch["name"]]
            old, new = _resources(container), _resources(patch)
            if self.decrease_forbidden and _mib(new["limits"]) < _mib(old["limits"]):
                return web.json_response(
                    fixture("status-422-memory-limit-decrease.json"), status=422
                )
            for kind in ("requests", "limits"):
                container["resources"][kind].update(new[kind])
        pod["metadata"]["generation"] += 1
        return web.json_response(pod)

    def _kubelet_sync(self, pod: dict[str, Any]) -> None:
        """One sync of the pod by its kubelet, as `kubelet` says it goes."""
        status = pod["status"]
        (cs,) = status["containerStatuses"]
        desired = _resources(pod["spec"]["containers"][0])
        generation = pod["metadata"]["generation"]
        resizing = [c for c in status["conditions"] if c["type"].startswith("PodResize")]
        status["conditions"] = [c for c in status["conditions"] if c not in resizing]
        status.pop("resize", None)
        if _mib(desired["limits"]) == _mib(cs["resources"]["limits"]) or self.kubelet == "silent":
            return
        if self.kubelet == "legacy-infeasible":
            status["resize"] = "Infeasible"
            return
        reason, message = {
            "infeasible": (
                "Infeasible",
                "Node didn't have enough capacity: memory, "
                "requested: 8589934592, capacity: 4109807616",
            ),
            "deferred": (
                "Deferred",
                "Node didn't have enough resource: memory, "
                "requested: 805306368, used: 3758096384, capacity: 4109807616",
            ),
            "error": (
                "Error",
                "attempting to set container memory limit (67108864) below "
                "its current usage (71303168)",
            ),
        }.get(self.kubelet, ("", ""))
        kind = "PodResizeInProgress" if self.kubelet in ("apply", "error") else "PodResizePending"
        if self.kubelet == "apply" and any(c["type"] == kind for c in resizing):
            cs["resources"] = copy.deepcopy(desired)  # the runtime applied it
            return
        cs["allocatedResources"] = dict(desired["requests"])
        condition = {
            "type": kind,
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": "2025-06-03T09:20:11Z",
            "observedGeneration": generation,
        }
        if reason:
            condition.update(reason=reason, message=message)
        status["conditions"].append(condition)

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


def _resources(container: dict[str, Any]) -> dict[str, dict[str, str]]:
    res = container.get("resources") or {}
    return {k: dict(res.get(k) or {}) for k in ("requests", "limits")}


def _mib(size: dict[str, str]) -> int:
    """A memory quantity of the forms the tests use ("256Mi", "1Gi") in MiB."""
    value = size["memory"]
    return int(value[:-2]) * (1024 if value.endswith("Gi") else 1)


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
