"""Virtual VMs with a boot delay and an hourly price, for capacity planning and benchmarks
(never the proof that the real path works).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from invoker.nodes.model import Flavor, Node
from invoker.nodes.placement import (
    NodeState,
)
from invoker.providers.base import NodeUsage


class SimulatedProvider:
    """Virtual VMs: each boots `flavor.boot_s` after it is requested, on an injected clock.

    Keeps every node it ever made (released ones too) so a benchmark can total VM-hours and
    cost afterwards.
    """

    name = "simulated"
    enforced = False  # nothing runs on a virtual VM
    unplaced_ok = False

    def __init__(self, clock: Callable[[], float], *, id_prefix: str = "sim") -> None:
        self.clock = clock
        self.id_prefix = id_prefix
        self.nodes: dict[str, Node] = {}
        self._ids = itertools.count(1)

    def _tick(self) -> None:
        now = self.clock()
        for n in self.nodes.values():
            if n.state is NodeState.PROVISIONING and n.created_at + n.flavor.boot_s <= now:
                n.mark_ready(n.created_at + n.flavor.boot_s)

    async def list(self) -> list[Node]:
        """Nodes not released, with those whose boot delay has passed now ready."""
        self._tick()
        return [n for n in self.nodes.values() if n.state is not NodeState.RELEASED]

    async def provision(self, flavor: Flavor) -> Node:
        """A new node, provisioning until `flavor.boot_s` has passed (ready at once if 0)."""
        node = Node(
            id=f"{self.id_prefix}-{next(self._ids)}", flavor=flavor, created_at=self.clock()
        )
        self.nodes[node.id] = node
        self._tick()
        return node

    async def release(self, node_id: str) -> None:
        """Release a node; refused while containers are still allocated on it."""
        node = self.nodes[node_id]
        if node.state is not NodeState.RELEASED:
            node.mark_released(self.clock())

    async def resize(self, node: Node, vcpu: float, memory_mb: int) -> None:
        """Virtual VMs take any size at once."""

    def usage(self, node_id: str) -> NodeUsage | None:
        """Virtual VMs use nothing: hot spots are judged by the books."""
        return None

    def cgroup_parent(self, node_id: str) -> str | None:
        """Virtual VMs have no cgroup."""
        return None

    def cleanup(self) -> None:
        """Nothing is left behind by virtual VMs."""

    def vm_hours(self, now: float | None = None) -> float:
        """VM-hours of every node so far."""
        t = self.clock() if now is None else now
        return sum(n.hours(t) for n in self.nodes.values())

    def cost(self, now: float | None = None) -> float:
        """What those VM-hours cost."""
        t = self.clock() if now is None else now
        return sum(n.hours(t) * n.price_per_hour for n in self.nodes.values())
