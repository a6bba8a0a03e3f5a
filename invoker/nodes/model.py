"""Nodes (VMs) and the sizes they come in: what the pool packs containers onto.

Resource vectors are `(vcpu, memory_mb)`, as in `invoker.nodes.placement`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from invoker.nodes.placement import (
    MEMORY_DIM,
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
    deflated: dict[str, int] = field(default_factory=dict)
    """Container id -> its memory limit now (MB), for idle containers deflated below their
    allocations; every other container holds its full allocation."""
    reserved: dict[str, int] = field(default_factory=dict)
    """Container id -> MB promised to its inflation while idle containers are evicted to
    make room: not held yet (not resident), but no one else may take it."""
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

    @property
    def allocated_memory_mb(self) -> int:
        """Sum of the full memory limits of the containers here."""
        return int(self._allocated[MEMORY_DIM])

    @property
    def resident_mb(self) -> int:
        """Sum of the containers' memory limits now: deflated ones count at their limit."""
        given_back = sum(
            int(self.allocations[c][MEMORY_DIM]) - limit
            for c, limit in self.deflated.items()
            if c in self.allocations
        )
        return self.allocated_memory_mb - given_back

    @property
    def overcommit_ratio(self) -> float:
        """Allocated memory (full limits) over the node's memory."""
        return self.allocated_memory_mb / self.flavor.memory_mb if self.flavor.memory_mb else 0.0

    @property
    def memory_pressure(self) -> float:
        """Resident memory (limits as they are now) over the node's memory."""
        return self.resident_mb / self.flavor.memory_mb if self.flavor.memory_mb else 0.0

    def resident_view(self) -> NodeView:
        """What placement sees on an overcommitted node: memory as the limits hold it now,
        plus what inflations under way were promised."""
        vcpu = self._allocated[:MEMORY_DIM]
        rest = self._allocated[MEMORY_DIM + 1 :]
        memory = self.resident_mb + self.reserved_mb
        return NodeView(self.id, self.capacity, (*vcpu, memory, *rest), self.state)

    @property
    def reserved_mb(self) -> int:
        """Memory promised to inflations under way (see `reserved`)."""
        return sum(self.reserved.values())

    def reserve(self, container_id: str, extra_mb: int) -> None:
        """Promise a container `extra_mb` more than its limit now (its inflation, once the
        containers evicted for it are gone); `set_limit` or `free` ends the promise."""
        if container_id not in self.allocations:
            raise KeyError(f"container {container_id} is not on node {self.id}")
        self.reserved[container_id] = extra_mb

    def set_limit(self, container_id: str, limit_mb: int) -> None:
        """Book a container's memory limit now (deflated below its allocation, or back)."""
        full = self.allocations.get(container_id)
        if full is None:
            raise KeyError(f"container {container_id} is not on node {self.id}")
        self.reserved.pop(container_id, None)
        if limit_mb >= full[MEMORY_DIM]:
            self.deflated.pop(container_id, None)
        else:
            self.deflated[container_id] = limit_mb

    def fits(self, demand: Vector, limits: PlacementLimits, max_ratio: float = 1.0) -> bool:
        """Would a new container (at its full size) fit here?

        Its full size must fit in the memory the limits leave now (resident), and the full
        limits of all containers may add up to at most `max_ratio` times the node's memory
        (1.0: no memory overcommit, the rule without ballooning).
        """
        allocated_after = self.allocated_memory_mb + demand[MEMORY_DIM]
        return limits.fits(demand, self.resident_view()) and within(
            allocated_after, self.flavor.memory_mb * max_ratio
        )

    def allocate(
        self, container_id: str, demand: Vector, limits: PlacementLimits, max_ratio: float = 1.0
    ) -> None:
        """Record a container on this node; refuses anything that would pass the limits."""
        if self.state is not NodeState.READY:
            raise ValueError(f"node {self.id} is {self.state.value}, not ready")
        if container_id in self.allocations:
            raise ValueError(f"container {container_id} is already on node {self.id}")
        if not self.fits(demand, limits, max_ratio):
            raise ValueError(f"{demand!r} does not fit on node {self.id}")
        self.allocations[container_id] = demand
        self._allocated = vadd(self._allocated, demand)

    def free(self, container_id: str) -> Vector | None:
        """Forget a container; returns what it held (None if it was not here)."""
        demand = self.allocations.pop(container_id, None)
        self.deflated.pop(container_id, None)
        self.reserved.pop(container_id, None)
        if demand is not None:
            # Re-summed rather than subtracted, so fractional vCPUs never drift.
            self._allocated = vsum(list(self.allocations.values()), len(self.capacity))
        return demand

    def reallocate(
        self, container_id: str, demand: Vector, limits: PlacementLimits, max_ratio: float = 1.0
    ) -> None:
        """Change what a container here is allocated (its function's memory changed).

        The new size must fit as a new container's would, the container's old share counted
        as free; ValueError (the books as they were) when it does not. A deflated limit at
        or above the new size is forgotten (the container holds its full size again).
        """
        old = self.allocations.get(container_id)
        if old is None:
            raise KeyError(f"container {container_id} is not on node {self.id}")
        deflated = self.deflated.get(container_id)
        reserved = self.reserved.get(container_id)
        self.free(container_id)
        fits = self.state is NodeState.READY and self.fits(demand, limits, max_ratio)
        kept = demand if fits else old
        self.allocations[container_id] = kept
        self._allocated = vadd(self._allocated, kept)
        if deflated is not None and deflated < kept[MEMORY_DIM]:
            self.deflated[container_id] = deflated
        if reserved is not None:
            self.reserved[container_id] = reserved
        if not fits:
            raise ValueError(f"{demand!r} does not fit on node {self.id}")

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
