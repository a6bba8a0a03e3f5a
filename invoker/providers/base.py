"""The seam between the node pool and where its nodes come from (a VM provider)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from invoker.nodes.model import Flavor, Node


class NotResizable(Exception):
    """The provider's nodes have a fixed size (a whole machine, a cluster node)."""


@dataclass(frozen=True)
class NodeUsage:
    """What a node's containers use together, as its kernel counts it."""

    cpu_s: float  # CPU seconds since the node started (a counter: rates come from deltas)
    memory_mb: float  # memory in use, page cache that can be dropped left out


class ResizeRefused(Exception):
    """The machine could not take its new size now (the kernel would not shrink a node's
    memory below what its containers use)."""


@runtime_checkable
class NodeProvider(Protocol):
    """Where nodes come from: lists, provisions and releases VMs.

    `enforced` says whether a node's limits are enforced by a kernel (a cgroup or a whole
    VM) rather than by bookkeeping only; `unplaced_ok` says a container that fits nowhere
    may still be created and left for the provider to place (Kubernetes leaves the pod
    Pending for the cluster autoscaler).
    """

    name: str
    enforced: bool
    unplaced_ok: bool

    async def list(self) -> builtins.list[Node]:
        """Every node this provider knows that is not released."""
        ...

    async def provision(self, flavor: Flavor) -> Node:
        """Request a VM; returns it (possibly still provisioning)."""
        ...

    async def release(self, node_id: str) -> None:
        """Give a VM back. The caller has drained it."""
        ...

    async def resize(self, node: Node, vcpu: float, memory_mb: int) -> None:
        """Apply a node's new size while it runs; `NotResizable` where the machine is fixed,
        `ResizeRefused` where it could not be applied now.

        The caller has checked that what is allocated fits the new size.
        """
        ...

    def cgroup_parent(self, node_id: str) -> str | None:
        """The cgroup parent of containers on `node_id`, where the provider has one."""
        ...

    def usage(self, node_id: str) -> NodeUsage | None:
        """The node's measured CPU and memory use (None where the provider cannot read
        them: hot spots are then judged by the books)."""
        ...

    def cleanup(self) -> None:
        """Remove what a crashed run of this provider left behind."""
        ...
