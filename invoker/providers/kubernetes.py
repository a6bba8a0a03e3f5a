"""The cluster's nodes as Nimbus's node pool.

On Kubernetes the cluster autoscaler owns node lifecycle: Nimbus lists the nodes (their
allocatable CPU and memory), packs function pods onto them with its placement policy
(`spec.nodeName`), and when nothing fits leaves the pod unbound, so it waits Pending until
a cluster autoscaler adds a node.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable

from invoker.nodes.model import Flavor, NoCapacity, Node
from invoker.providers.base import NodeUsage, NotResizable
from invoker.providers.kubernetes_nodes import ClusterNode, KubernetesNodeProvider


def node_from_cluster(node: ClusterNode, now: float) -> Node:
    """A cluster node as a pool node: its allocatable resources are its flavor."""
    flavor = Flavor(
        name=f"k8s:{node.id}", vcpu=node.vcpu, memory_mb=node.memory_mb, price_per_hour=0.0
    )
    pooled = Node(id=node.id, flavor=flavor, created_at=now)
    pooled.mark_ready(now)
    if not node.usable:
        pooled.drain()  # cordoned, tainted or not ready: take nothing new
    return pooled


class ClusterProvider:
    """A VM provider over the cluster's nodes: lists them, never provisions or releases."""

    name = "kubernetes"
    enforced = False  # the kubelet enforces pod limits; there is no node cgroup of ours
    unplaced_ok = True  # a pod that fits nowhere is left Pending for the cluster autoscaler

    def __init__(self, nodes: KubernetesNodeProvider, clock: Callable[[], float]) -> None:
        self._nodes = nodes
        self._clock = clock

    async def list(self) -> builtins.list[Node]:
        """Every node of the cluster, usable ones ready."""
        now = self._clock()
        return [node_from_cluster(n, now) for n in await self._nodes.list_nodes()]

    async def provision(self, flavor: Flavor) -> Node:
        """Not Nimbus's job on a cluster."""
        raise NoCapacity("the cluster autoscaler adds nodes; the pod waits Pending for one")

    async def release(self, node_id: str) -> None:
        """Not Nimbus's job on a cluster: the node is only forgotten."""
        return None

    async def resize(self, node: Node, vcpu: float, memory_mb: int) -> None:
        """Refused: the cluster's nodes are sized by the cloud, not by Nimbus."""
        raise NotResizable(f"node {node.id} is a cluster node; its size is the cluster's")

    def usage(self, node_id: str) -> NodeUsage | None:
        """Cluster nodes are not read here: hot spots are judged by the books."""
        return None

    def cgroup_parent(self, node_id: str) -> str | None:
        """Pods get no cgroup parent from Nimbus."""
        return None

    def cleanup(self) -> None:
        """Nothing of ours to clean up on cluster nodes."""
