"""The Kubernetes driver creating pods, and the API errors it reports.

No cluster runs here: kube_fake's aiohttp server on 127.0.0.1 plays kube-apiserver with
the recorded objects in tests/fixtures/k8s/, and the code under test talks to it through a
real `kubernetes.client.ApiClient`.
"""

from __future__ import annotations

import asyncio
import socket
import time

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient, Configuration

from invoker.drivers.base import INSTANCE_LABEL, MANAGED_LABEL, DriverError
from invoker.drivers.kubernetes import KubernetesDriver
from invoker.drivers.kubernetes_pods import EGRESS_LABEL, KubernetesDriverConfig, pod_manifest
from invoker.drivers.kubernetes_status import KubernetesApiError
from invoker.providers.kubernetes_nodes import Toleration
from tests.unit import kube_fake
from tests.unit.kube_fake import (
    BIG_POD,
    FAST,
    INSTANCE,
    NS,
    OWNER,
    POD,
    Cluster,
    Probe,
    driver,
    fixture,
    spec,
)

cluster = kube_fake.cluster


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
