"""The Kubernetes driver and node provider against the API's recorded behaviour, over HTTP.

No cluster runs here. A small aiohttp server on 127.0.0.1 plays kube-apiserver:
it answers with the recorded objects in tests/fixtures/k8s/ (Pod, PodList,
NodeList and Status objects in the API's own shapes) and records every request.
The driver talks to it through a real `kubernetes.client.ApiClient`, so the
client's URL building, serialisation and error handling are all exercised.

The recorded pods have cluster IPs (10.244.x.x). Tests inject a readiness probe
so nothing ever connects there; the one test of the real HTTP probe rewrites
the pod IP to 127.0.0.1 first.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from aiohttp import web
from kubernetes.client import ApiClient, Configuration

from invoker.drivers.base import (
    INSTANCE_LABEL,
    MANAGED_LABEL,
    ContainerDriver,
    ContainerHandle,
    ContainerSpec,
    DriverError,
)
from invoker.drivers.kubernetes import KubernetesDriver, load_api_client
from invoker.drivers.kubernetes_pods import EGRESS_LABEL, KubernetesDriverConfig, pod_manifest
from invoker.drivers.kubernetes_status import KubernetesApiError
from invoker.providers.kubernetes_nodes import (
    KubernetesNodeProvider,
    NodeLifecycleNotSupported,
    NodeListError,
    Toleration,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s"
NS = "nimbus-functions"
OWNER = "n3f9a1c2b7d4e"
INSTANCE = "2f9d1c0a7b6e4d3c9a8b7c6d5e4f3a2b"
POD = "nimbus-2f9d1c0a-1-7f3c9a"  # the name the recorded pod objects carry
BIG_POD = "nimbus-2f9d1c0a-2-0c41d7"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


# --- a fake kube-apiserver ------------------------------------------------------


@dataclass
class Request:
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
    api: FakeKubeApi
    client: ApiClient
    port: int


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
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
    return KubernetesDriver(cluster.client, config=config, readiness=probe or Probe(True))


# --- create ---------------------------------------------------------------------


async def test_create_sends_a_hardened_pod_bound_to_the_chosen_node(cluster: Cluster) -> None:
    probe = Probe(False, True)
    handle = await driver(cluster, probe).create(spec())

    assert handle.address == "http://10.244.1.17:8080"
    assert handle.node == "worker-b"
    assert handle.id == "6a1f0c2e-4b7d-4e8a-9c3b-1d2e3f4a5b6c"  # the pod's uid
    assert probe.asked == ["http://10.244.1.17:8080"] * 2

    (post,) = cluster.api.sent("POST")
    assert post.path == f"/api/v1/namespaces/{NS}/pods"
    pod = post.body
    assert pod["metadata"]["name"] == POD
    assert pod["metadata"]["labels"][MANAGED_LABEL] == OWNER
    assert pod["metadata"]["labels"][INSTANCE_LABEL] == INSTANCE
    assert pod["metadata"]["labels"]["io.nimbus.function"] == "hello"
    assert pod["metadata"]["labels"][EGRESS_LABEL] == "deny"
    podspec = pod["spec"]
    assert podspec["nodeName"] == "worker-b"
    assert podspec["restartPolicy"] == "Never"
    assert podspec["automountServiceAccountToken"] is False
    assert "runtimeClassName" not in podspec
    assert podspec["securityContext"]["runAsNonRoot"] is True
    assert podspec["securityContext"]["runAsUser"] == 10001
    assert podspec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = podspec["containers"]
    assert container["image"] == "nimbus/python:3.11"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "256Mi"}
    assert container["resources"]["limits"] == container["resources"]["requests"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsUser"] == 10001
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"GREETING": "hi", "NIMBUS_PORT": "8080"}
    (volume,) = podspec["volumes"]
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/tmp"}]
    # It polled until Running: at least the ContainerCreating read and the Running one.
    assert len(cluster.api.sent("GET")) >= 2


async def test_the_pod_sent_is_valid_against_the_real_pod_schema(cluster: Cluster) -> None:
    config = KubernetesDriverConfig(
        runtime_class="gvisor",
        tolerations=(Toleration("nimbus.io/dedicated", "Equal", "functions", "NoSchedule"),),
        start_timeout_s=5.0,
        poll_initial_s=0.01,
    )
    await driver(cluster, config=config).create(spec(network=True))
    pod = cluster.api.sent("POST")[0].body
    # Strict: an unknown field (a typo) fails as well as a wrong type.
    kubernetes_validate.validate(pod, "1.30", strict=True)
    # The client's models drop keys they do not know, so a typo would vanish on
    # the way out: validate the manifest as the driver builds it, too.
    built = pod_manifest(spec(network=True), image="nimbus/python:3.11", config=config)
    kubernetes_validate.validate(built, "1.30", strict=True)
    assert built == pod
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["spec"]["tolerations"] == [
        {
            "key": "nimbus.io/dedicated",
            "operator": "Equal",
            "value": "functions",
            "effect": "NoSchedule",
        }
    ]
    assert pod["metadata"]["labels"][EGRESS_LABEL] == "allow"


async def test_without_a_node_the_scheduler_places_the_pod(cluster: Cluster) -> None:
    await driver(cluster).create(spec(node=None, cpus=2.0, memory_mb=1024))
    pod = cluster.api.sent("POST")[0].body
    assert "nodeName" not in pod["spec"]
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "1024Mi"}


async def test_a_pod_pending_past_the_timeout_reports_the_scheduler_and_is_deleted(
    cluster: Cluster,
) -> None:
    cluster.api.reads = [fixture("pod-pending-unschedulable.json")]
    config = KubernetesDriverConfig(start_timeout_s=0.3, poll_initial_s=0.01, poll_max_s=0.05)
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        await driver(cluster, config=config).create(spec(BIG_POD, node=None, memory_mb=4096))
    message = str(caught.value)
    assert "still Pending after 0.3s" in message
    assert "Unschedulable" in message
    assert "2 Insufficient memory" in message
    assert time.monotonic() - started >= 0.3
    (delete,) = cluster.api.sent("DELETE")
    assert delete.path == f"/api/v1/namespaces/{NS}/pods/{BIG_POD}"
    assert BIG_POD not in cluster.api.existing


async def test_a_pod_the_kubelet_rejects_fails_at_once_with_its_reason(cluster: Cluster) -> None:
    cluster.api.reads = [fixture("pod-failed-outofmemory.json")]
    config = KubernetesDriverConfig(start_timeout_s=60.0, poll_initial_s=0.01)
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        await driver(cluster, config=config).create(spec())
    assert time.monotonic() - started < 5.0  # not the 60 s timeout
    assert "OutOfmemory" in str(caught.value)
    assert "Node didn't have enough resource: memory" in str(caught.value)
    assert len(cluster.api.sent("DELETE")) == 1


async def test_an_image_that_can_never_be_pulled_fails_at_once(cluster: Cluster) -> None:
    cluster.api.reads = [fixture("pod-pending-errimageneverpull.json")]
    config = KubernetesDriverConfig(start_timeout_s=60.0, poll_initial_s=0.01)
    with pytest.raises(DriverError, match="ErrImageNeverPull"):
        await driver(cluster, config=config).create(spec())
    assert len(cluster.api.sent("DELETE")) == 1


async def test_a_proxy_that_never_answers_healthz_times_out_and_is_deleted(
    cluster: Cluster,
) -> None:
    cluster.api.reads = [fixture("pod-running.json")]
    config = KubernetesDriverConfig(start_timeout_s=0.3, probe_interval_s=0.01, poll_max_s=0.05)
    probe = Probe(False)
    with pytest.raises(DriverError, match=r"GET /healthz did not answer within 0\.3s"):
        await driver(cluster, probe, config).create(spec())
    assert len(probe.asked) > 3
    assert len(cluster.api.sent("DELETE")) == 1


async def test_a_pod_deleted_while_starting_is_reported(cluster: Cluster) -> None:
    cluster.api.vanish_after_create = True  # someone deletes it right away
    with pytest.raises(DriverError, match="disappeared while starting"):
        await driver(cluster).create(spec())


async def test_a_cancelled_create_deletes_its_pod(cluster: Cluster) -> None:
    cluster.api.reads = [fixture("pod-pending-containercreating.json")]
    task = asyncio.create_task(driver(cluster).create(spec()))
    await asyncio.wait_for(cluster.api.read_seen.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.path for r in cluster.api.sent("DELETE")] == [f"/api/v1/namespaces/{NS}/pods/{POD}"]


async def test_a_create_cancelled_during_the_post_still_removes_the_pod(
    cluster: Cluster,
) -> None:
    cluster.api.create_delay_s = 0.3  # the API is slow to answer the POST
    task = asyncio.create_task(driver(cluster).create(spec()))
    await asyncio.wait_for(cluster.api.create_seen.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(cluster.api.create_done.wait(), timeout=5)
    # The POST completed after the cancel, and the pod it made was then deleted.
    assert [r.method for r in cluster.api.requests] == ["POST", "DELETE"]
    assert POD not in cluster.api.existing


async def test_the_default_probe_waits_for_healthz_over_http(cluster: Cluster) -> None:
    # The one place a probe really connects: to this test's server, on 127.0.0.1.
    running = fixture("pod-running.json")
    running["status"]["podIP"] = "127.0.0.1"
    running["status"]["podIPs"] = [{"ip": "127.0.0.1"}]
    cluster.api.reads = [running]
    cluster.api.healthz = [503, 503, 200]
    config = KubernetesDriverConfig(
        port=cluster.port, start_timeout_s=5.0, poll_initial_s=0.01, probe_interval_s=0.01
    )
    handle = await KubernetesDriver(cluster.client, config=config).create(spec())
    assert handle.address == f"http://127.0.0.1:{cluster.port}"
    assert cluster.api.healthz == [200]  # both 503s were consumed before it returned
    env = {
        e["name"]: e["value"]
        for e in cluster.api.sent("POST")[0].body["spec"]["containers"][0]["env"]
    }
    assert env["NIMBUS_PORT"] == str(cluster.port)


async def test_an_unknown_runtime_sends_nothing(cluster: Cluster) -> None:
    with pytest.raises(DriverError, match="no container image for runtime 'cobol:85'"):
        await driver(cluster).create(spec(runtime="cobol:85"))
    assert cluster.api.requests == []


async def test_images_come_from_the_given_mapping(cluster: Cluster) -> None:
    images = {"python:3.11": "registry.example.com/nimbus/python:3.11-abc123"}
    drv = KubernetesDriver(cluster.client, config=FAST, image_for=images, readiness=Probe(True))
    await drv.create(spec())
    image = cluster.api.sent("POST")[0].body["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/nimbus/python:3.11-abc123"


# --- API errors -------------------------------------------------------------------


async def test_a_name_conflict_is_a_clear_error_and_deletes_nothing(cluster: Cluster) -> None:
    cluster.api.create_reply = (409, fixture("status-409-already-exists.json"))
    with pytest.raises(KubernetesApiError) as caught:
        await driver(cluster).create(spec())
    assert caught.value.status == 409
    assert "already exists in namespace 'nimbus-functions'" in str(caught.value)
    assert f'pods "{POD}" already exists' in str(caught.value)
    # The pod with that name is not ours to remove.
    assert cluster.api.sent("DELETE") == []


async def test_forbidden_says_which_permission_is_missing(cluster: Cluster) -> None:
    cluster.api.create_reply = (403, fixture("status-403-forbidden-create-pods.json"))
    with pytest.raises(KubernetesApiError) as caught:
        await driver(cluster).create(spec())
    message = str(caught.value)
    assert caught.value.status == 403
    assert "missing RBAC permission 'create' on 'pods'" in message
    assert "system:serviceaccount:nimbus:nimbus" in message
    assert "namespace 'nimbus-functions'" in message


async def test_an_unreachable_api_is_a_driver_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    client = ApiClient(configuration)
    try:
        drv = KubernetesDriver(client, config=FAST, readiness=Probe(True))
        with pytest.raises(
            DriverError, match=f"cannot reach the Kubernetes API at http://127.0.0.1:{port}"
        ):
            await drv.create(spec())
    finally:
        client.close()  # type: ignore[no-untyped-call]


# --- destroy, orphans, stats ----------------------------------------------------------


async def test_destroy_deletes_and_a_pod_already_gone_is_fine(cluster: Cluster) -> None:
    cluster.api.existing.add(POD)
    drv = driver(cluster)
    handle = ContainerHandle(id="uid", name=POD, address="http://10.244.1.17:8080")
    await drv.destroy(handle)
    await drv.destroy(handle)  # the API now answers 404
    first, second = cluster.api.sent("DELETE")
    assert first.path == second.path == f"/api/v1/namespaces/{NS}/pods/{POD}"
    assert first.body == {"gracePeriodSeconds": 1}
    assert POD not in cluster.api.existing


async def test_remove_orphans_deletes_only_this_owners_pods_of_other_instances(
    cluster: Cluster,
) -> None:
    everything = [p["metadata"]["name"] for page in cluster.api.pod_pages for p in page["items"]]
    cluster.api.existing.update(everything)

    removed = await driver(cluster).remove_orphans(OWNER, INSTANCE)

    lists = cluster.api.sent("GET")
    assert [r.query.get("labelSelector") for r in lists] == [f"{MANAGED_LABEL}={OWNER}"] * 2
    assert "continue" in lists[1].query  # followed the second page
    deleted = sorted(r.path.rsplit("/", 1)[1] for r in cluster.api.sent("DELETE"))
    # Ours (this instance) stays; the terminating one is left to finish; the other
    # owner's pod is never even listed.
    assert deleted == ["nimbus-0aa0e7c4-3-a90e12", "nimbus-0aa0e7c4-4-55d0b1"]
    assert removed == 2
    assert {POD, "nimbus-77c0ffee-9-abcdef"} <= cluster.api.existing


async def test_stats_are_unknown_rather_than_invented(cluster: Cluster) -> None:
    stats = await driver(cluster).stats(ContainerHandle(id="u", name=POD, address="http://x:1"))
    assert (stats.peak_memory_mb, stats.cpu_seconds) == (None, None)
    assert cluster.api.requests == []


async def test_a_kubeconfig_client_reaches_the_named_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        f"""
apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster: {{server: "http://127.0.0.1:{cluster.port}"}}
users:
  - name: nimbus
    user: {{token: not-a-real-token}}
contexts:
  - name: test
    context: {{cluster: test, user: nimbus, namespace: {NS}}}
current-context: test
"""
    )
    client = load_api_client(str(kubeconfig))
    try:
        cluster.api.existing.add(POD)
        drv = KubernetesDriver(client, config=FAST, readiness=Probe(True))
        await drv.destroy(ContainerHandle(id="u", name=POD, address="http://x:1"))
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert [r.path for r in cluster.api.sent("DELETE")] == [f"/api/v1/namespaces/{NS}/pods/{POD}"]
    assert cluster.api.headers[-1]["Authorization"] == "Bearer not-a-real-token"


def test_the_driver_satisfies_the_protocol(cluster: Cluster) -> None:
    drv = driver(cluster)
    assert isinstance(drv, ContainerDriver)
    assert drv.name == "kubernetes"


# --- the node provider over HTTP ------------------------------------------------------


async def test_node_provider_reads_allocatable_taints_and_readiness(cluster: Cluster) -> None:
    tolerate = Toleration("nimbus.io/dedicated", "Equal", "functions", "NoSchedule")
    provider = KubernetesNodeProvider(
        cluster.client, tolerations=[tolerate], label_selector="nimbus.io/pool=functions"
    )
    nodes = {n.id: n for n in await provider.list_nodes()}

    (request,) = cluster.api.sent("GET")
    assert request.path == "/api/v1/nodes"
    assert request.query["labelSelector"] == "nimbus.io/pool=functions"
    assert set(nodes) == {"control-plane", "worker-a", "worker-b", "worker-c", "worker-d"}
    assert (nodes["worker-a"].vcpu, nodes["worker-a"].memory_mb) == (3.92, 15224636 // 1024)
    assert (nodes["worker-b"].vcpu, nodes["worker-b"].memory_mb) == (3.8, 15 * 1024)
    assert nodes["worker-c"].memory_mb == 3500 * 10**6 // 2**20
    usable = sorted(n.id for n in nodes.values() if n.usable)
    assert usable == ["worker-a", "worker-b"]
    assert not nodes["control-plane"].schedulable and nodes["control-plane"].ready
    assert not nodes["worker-c"].schedulable  # cordoned
    assert not nodes["worker-d"].ready  # kubelet stopped posting status
    assert nodes["worker-b"].labels["nimbus.io/pool"] == "functions"


async def test_node_provider_without_the_toleration_skips_the_dedicated_node(
    cluster: Cluster,
) -> None:
    nodes = {n.id: n for n in await KubernetesNodeProvider(cluster.client).list_nodes()}
    assert not nodes["worker-a"].schedulable
    assert nodes["worker-b"].schedulable  # PreferNoSchedule does not block


async def test_node_provider_forbidden_names_the_cluster_role(cluster: Cluster) -> None:
    cluster.api.nodes_reply = (403, fixture("status-403-forbidden-list-nodes.json"))
    with pytest.raises(NodeListError) as caught:
        await KubernetesNodeProvider(cluster.client).list_nodes()
    assert "missing permission to list nodes" in str(caught.value)
    assert 'cannot list resource "nodes"' in str(caught.value)


async def test_node_lifecycle_belongs_to_the_cluster_autoscaler(cluster: Cluster) -> None:
    provider = KubernetesNodeProvider(cluster.client)
    with pytest.raises(NodeLifecycleNotSupported, match="cluster autoscaler"):
        await provider.provision("m5.large")
    with pytest.raises(NotImplementedError, match="worker-a"):
        await provider.release("worker-a")
    assert cluster.api.requests == []
