"""Nodes (VMs) and the sizes they come in: what the pool packs containers onto.

Resource vectors are `(vcpu, memory_mb)`, as in `invoker.nodes.placement`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from invoker.nodes.placement import (
    NodeState,
    NodeView,
    PlacementLimits,
    Vector,
    vadd,
    vsum,
    within,
)


@dataclass(frozen=True)
class Flavor:
    """A VM size on offer: what it holds, what it costs, how long it takes to boot."""

    name: str
    vcpu: float
    memory_mb: int
    price_per_hour: float
    boot_s: float = 0.0

    @property
    def capacity(self) -> Vector:
        """(vcpu, memory_mb)."""
        return (self.vcpu, self.memory_mb)


@dataclass
class Node:
    """One VM and the containers allocated on it (container id -> resource vector).

    Times are seconds on whatever monotonic clock the caller uses; a node is billed from
    `created_at` (the provision request) to `released_at`.
    """

    id: str
    flavor: Flavor
    state: NodeState = NodeState.PROVISIONING
    allocations: dict[str, Vector] = field(default_factory=dict)
    created_at: float = 0.0
    ready_at: float | None = None
    released_at: float | None = None
    # Kept in step by allocate/free, so placement does not re-add every allocation per call.
    _allocated: Vector = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._allocated = vsum(list(self.allocations.values()), len(self.capacity))

    @property
    def capacity(self) -> Vector:
        """The flavor's (vcpu, memory_mb)."""
        return self.flavor.capacity

    @property
    def price_per_hour(self) -> float:
        """The flavor's hourly price."""
        return self.flavor.price_per_hour

    @property
    def allocated(self) -> Vector:
        """Sum of the allocations on this node (change them only with allocate / free)."""
        return self._allocated

    def view(self) -> NodeView:
        """What placement policies see."""
        return NodeView(self.id, self.capacity, self.allocated, self.state)

    def allocate(self, container_id: str, demand: Vector, limits: PlacementLimits) -> None:
        """Record a container on this node; refuses anything that would pass the limits."""
        if self.state is not NodeState.READY:
            raise ValueError(f"node {self.id} is {self.state.value}, not ready")
        if container_id in self.allocations:
            raise ValueError(f"container {container_id} is already on node {self.id}")
        if not limits.fits(demand, self.view()):
            raise ValueError(f"{demand!r} does not fit on node {self.id}")
        self.allocations[container_id] = demand
        self._allocated = vadd(self._allocated, demand)

    def free(self, container_id: str) -> Vector | None:
        """Forget a container; returns what it held (None if it was not here)."""
        demand = self.allocations.pop(container_id, None)
        if demand is not None:
            # Re-summed rather than subtracted, so fractional vCPUs never drift.
            self._allocated = vsum(list(self.allocations.values()), len(self.capacity))
        return demand

    def resize(self, vcpu: float, memory_mb: int, limits: PlacementLimits) -> None:
        """Change the node's size while it runs (vertical scaling).

        Refused (ValueError) when what is already allocated would pass the new limits: a
        resize never takes back what a container was promised. The price scales with the
        size (the mean of the two ratios), so bills stay honest after a resize.
        """
        if not (vcpu > 0 and memory_mb > 0):
            raise ValueError("a node needs some vcpu and memory")
        new = (vcpu, memory_mb)
        if not all(within(a, c) for a, c in zip(self._allocated, limits.limit(new), strict=True)):
            raise ValueError(f"node {self.id} holds {self._allocated!r}: more than {new!r} allows")
        old = self.flavor
        ratio = (vcpu / old.vcpu + memory_mb / old.memory_mb) / 2
        self.flavor = Flavor(
            name=old.name if new == old.capacity else f"{old.name}-resized",
            vcpu=vcpu,
            memory_mb=memory_mb,
            price_per_hour=round(old.price_per_hour * ratio, 6),
            boot_s=old.boot_s,
        )

    def mark_ready(self, now: float) -> None:
        """The VM has booted and can take containers."""
        if self.state is NodeState.PROVISIONING:
            self.state = NodeState.READY
            self.ready_at = now

    def drain(self) -> None:
        """Take no new containers; the ones here finish or are moved."""
        if self.state in (NodeState.PROVISIONING, NodeState.READY):
            self.state = NodeState.DRAINING

    def mark_released(self, now: float) -> None:
        """The VM is gone. Refused while anything is still allocated on it."""
        if self.allocations:
            raise ValueError(f"node {self.id} still runs {len(self.allocations)} containers")
        self.state = NodeState.RELEASED
        self.released_at = now

    def hours(self, now: float) -> float:
        """VM-hours billed so far."""
        end = self.released_at if self.released_at is not None else now
        return max(0.0, end - self.created_at) / 3600.0


LAMBDA_MB_PER_VCPU = 1769  # AWS's ratio: what share of a CPU a function's memory buys


class NoCapacity(Exception):
    """No node can take the container and the pool may not grow (429 for the caller)."""


def demand_for(memory_mb: int) -> Vector:
    """What a container asks of a node: a CPU share proportional to memory, and memory."""
    return (round(memory_mb / LAMBDA_MB_PER_VCPU, 4), memory_mb)
