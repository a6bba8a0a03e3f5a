"""Cluster nodes as the node pool: pods are packed onto them, or left Pending when full."""

from __future__ import annotations

import itertools

from invoker.nodes.model import Flavor
from invoker.nodes.node_pool import NodePool, NodePoolConfig
from invoker.nodes.placement import NodeState, PlacementLimits, placement_policy_by_name
from invoker.providers.kubernetes import ClusterProvider
from invoker.providers.kubernetes_nodes import ClusterNode


class Cluster:
    """Stands in for KubernetesNodeProvider.list_nodes (the HTTP side is tested elsewhere)."""

    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes

    async def list_nodes(self) -> list[ClusterNode]:
        return list(self.nodes)


def pool(cluster: Cluster) -> NodePool:
    ticks = itertools.count()
    provider = ClusterProvider(cluster, lambda: float(next(ticks)))  # type: ignore[arg-type]
    return NodePool(
        provider,
        placement_policy_by_name("first-fit"),
        PlacementLimits(),
        NodePoolConfig(flavors=(Flavor("unused", 1, 1, 0.0),), min_nodes=0, max_nodes=100),
        clock=lambda: 0.0,
    )


async def test_pods_packed_onto_usable_cluster_nodes_then_left_pending() -> None:
    cluster = Cluster(
        [
            ClusterNode("worker-1", vcpu=2.0, memory_mb=1024, ready=True, schedulable=True),
            ClusterNode("cordoned", vcpu=8.0, memory_mb=65536, ready=True, schedulable=False),
        ]
    )
    nodes = pool(cluster)
    await nodes.start()
    assert nodes.nodes["cordoned"].state is NodeState.DRAINING
    first = await nodes.place("pod-a", 512)
    second = await nodes.place("pod-b", 512)
    assert first is not None and second is not None
    assert first.id == second.id == "worker-1"
    assert await nodes.place("pod-c", 512) is None  # full: Pending, for the cluster autoscaler
    assert nodes.cgroup_parent("worker-1") is None

    # The cluster autoscaler added a node: the next placement finds it.
    cluster.nodes.append(ClusterNode("worker-2", 2.0, 4096, ready=True, schedulable=True))
    third = await nodes.place("pod-d", 512)
    assert third is not None and third.id == "worker-2"
    nodes.free("pod-a", first.id)
    again = await nodes.place("pod-e", 256)
    assert again is not None and again.id == "worker-1"
