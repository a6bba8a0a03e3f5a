"""The Kubernetes driver resizing pods in place (KEP-1287), or saying it cannot.

kube_fake plays a 1.33 API server (the pod's `resize` subresource) and the kubelet of the
pod's node, which applies a resize over its next syncs or marks it Infeasible, Deferred or
Error; older servers answer the subresource with 404. The driver speaks to it through a
real `kubernetes.client.ApiClient`.
"""

from __future__ import annotations

from typing import Any

import pytest

from invoker.drivers.base import ContainerHandle
from invoker.drivers.kubernetes_pods import KubernetesDriverConfig
from invoker.drivers.kubernetes_status import quantity_bytes
from tests.unit import kube_fake
from tests.unit.kube_fake import NS, POD, Cluster, driver, fixture

cluster = kube_fake.cluster

HANDLE = ContainerHandle(id="6a1f0c2e", name=POD, address="http://10.244.1.17:8080")
RESIZE_PATH = f"/api/v1/namespaces/{NS}/pods/{POD}/resize"


def running(cluster: Cluster) -> dict[str, Any]:
    """A 1.33 pod of 256Mi, running, that the fake keeps as state."""
    pod = fixture("pod-running-resizable.json")
    cluster.api.pods[POD] = pod
    cluster.api.existing.add(POD)
    return pod


def memory(pod: dict[str, Any]) -> tuple[str, str, str]:
    """The pod's memory as desired (spec limit and request) and as it runs (status)."""
    (container,) = pod["spec"]["containers"]
    (status,) = pod["status"]["containerStatuses"]
    return (
        container["resources"]["limits"]["memory"],
        container["resources"]["requests"]["memory"],
        status["resources"]["limits"]["memory"],
    )


def resizes(cluster: Cluster) -> list[Any]:
    return [r.body for r in cluster.api.sent("PATCH") if r.path == RESIZE_PATH]


def patch_to(mb: int) -> dict[str, Any]:
    size = {"memory": f"{mb}Mi"}
    resources = {"requests": size, "limits": size}
    return {"spec": {"containers": [{"name": "runtime", "resources": resources}]}}


async def test_a_resize_goes_through_the_subresource_and_waits_for_the_kubelet(
    cluster: Cluster,
) -> None:
    pod = running(cluster)
    k8s = driver(cluster)

    assert await k8s.set_memory_limit(HANDLE, 512) is True
    # Done means the kubelet reports it running at the new size, not only accepted.
    assert memory(pod) == ("512Mi", "512Mi", "512Mi")
    assert resizes(cluster) == [patch_to(512)]  # requests with limits: still Guaranteed
    patch = next(h for r, h in zip(cluster.api.requests, cluster.api.headers, strict=True)
                 if r.method == "PATCH")  # fmt: skip
    assert patch["Content-Type"] == "application/strategic-merge-patch+json"
    # Lowering it (1.34+) is a resize like any other; the server's version was read once.
    assert await k8s.set_memory_limit(HANDLE, 128) is True
    assert memory(pod) == ("128Mi", "128Mi", "128Mi")
    assert [r.path for r in cluster.api.sent("GET")].count("/version/") == 1
    assert await k8s.can_resize() is True


@pytest.mark.parametrize("kubelet", ["infeasible", "deferred", "error", "legacy-infeasible"])
async def test_a_resize_the_kubelet_refuses_is_not_done_and_is_withdrawn(
    cluster: Cluster, kubelet: str
) -> None:
    pod = running(cluster)
    cluster.api.kubelet = kubelet

    assert await driver(cluster).set_memory_limit(HANDLE, 8192) is False
    # The desired size is back at what the pod runs with: a Deferred resize cannot land
    # later, behind the books of a caller that was told it did not happen.
    assert resizes(cluster) == [patch_to(8192), patch_to(256)]
    assert memory(pod) == ("256Mi", "256Mi", "256Mi")


async def test_a_resize_the_kubelet_never_applies_times_out_and_is_withdrawn(
    cluster: Cluster,
) -> None:
    pod = running(cluster)
    cluster.api.kubelet = "silent"  # e.g. the node's kubelet is down
    config = KubernetesDriverConfig(poll_initial_s=0.01, poll_max_s=0.02, resize_timeout_s=0.2)

    assert await driver(cluster, config=config).set_memory_limit(HANDLE, 512) is False
    assert resizes(cluster) == [patch_to(512), patch_to(256)]
    assert memory(pod) == ("256Mi", "256Mi", "256Mi")


async def test_a_stale_resize_condition_of_an_earlier_generation_is_ignored(
    cluster: Cluster,
) -> None:
    pod = running(cluster)
    pod["status"]["conditions"].append(
        {"type": "PodResizePending", "status": "True", "reason": "Deferred",
         "message": "an earlier resize", "observedGeneration": 1}
    )  # fmt: skip

    assert await driver(cluster).set_memory_limit(HANDLE, 512) is True
    assert memory(pod) == ("512Mi", "512Mi", "512Mi")


async def test_1_33_refuses_to_lower_a_memory_limit_in_place(cluster: Cluster) -> None:
    pod = running(cluster)
    cluster.api.decrease_forbidden = True  # 1.33's API validation
    k8s = driver(cluster)

    assert await k8s.set_memory_limit(HANDLE, 128) is False
    assert memory(pod) == ("256Mi", "256Mi", "256Mi")
    assert resizes(cluster) == [patch_to(128)]  # refused by the API: nothing to withdraw
    assert await k8s.set_memory_limit(HANDLE, 512) is True  # raising it still works


async def test_a_server_without_the_subresource_means_no_resize_for_good(
    cluster: Cluster,
) -> None:
    pod = running(cluster)
    cluster.api.version = fixture("version-1.31.json")
    cluster.api.resize_subresource = False
    k8s = driver(cluster)

    assert await k8s.can_resize() is None  # too old to say: its first resize tells
    assert await k8s.set_memory_limit(HANDLE, 512) is False
    assert await k8s.can_resize() is False
    assert await k8s.set_memory_limit(HANDLE, 128) is False
    assert len(resizes(cluster)) == 1  # asked once, then never again
    assert memory(pod) == ("256Mi", "256Mi", "256Mi")


async def test_an_older_server_whose_subresource_answers_resizes(cluster: Cluster) -> None:
    pod = running(cluster)
    cluster.api.version = fixture("version-1.31.json")  # the feature gate turned on
    k8s = driver(cluster)

    assert await k8s.set_memory_limit(HANDLE, 512) is True
    assert await k8s.can_resize() is True
    assert memory(pod) == ("512Mi", "512Mi", "512Mi")


async def test_a_pod_that_is_gone_is_not_resized_and_resize_stays_supported(
    cluster: Cluster,
) -> None:
    k8s = driver(cluster)
    assert await k8s.set_memory_limit(HANDLE, 512) is False
    assert await k8s.can_resize() is True
    assert len(resizes(cluster)) == 1


def test_memory_quantities_in_every_form_the_api_writes() -> None:
    mib = 1024 * 1024
    assert quantity_bytes("256Mi") == 256 * mib
    assert quantity_bytes("1Gi") == 1024 * mib
    assert quantity_bytes(str(256 * mib)) == 256 * mib
    assert quantity_bytes("268435456e0") == 256 * mib
    assert quantity_bytes("1G") == 1e9
    assert quantity_bytes("1.5Gi") == 1536 * mib
    assert quantity_bytes("lots") is None
