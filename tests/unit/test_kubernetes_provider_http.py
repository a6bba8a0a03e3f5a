"""The Kubernetes node provider reading nodes over HTTP.

No cluster runs here: kube_fake's aiohttp server on 127.0.0.1 plays kube-apiserver with
the recorded objects in tests/fixtures/k8s/, and the code under test talks to it through a
real `kubernetes.client.ApiClient`.
"""

from __future__ import annotations

import pytest

from invoker.providers.kubernetes_nodes import (
    KubernetesNodeProvider,
    NodeLifecycleNotSupported,
    NodeListError,
    Toleration,
)
from tests.unit import kube_fake
from tests.unit.kube_fake import Cluster, fixture

cluster = kube_fake.cluster


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
