"""Managed over-provisioning of memory: a node admits idle containers at their deflated size.

Pure decision logic, no I/O, no clock. Memory on a node is counted two ways:

- resident: what the containers' current limits hold, i.e. the deflated size of idle ones
  and the full `memory_mb` of busy ones (a busy container is always inflated). It never
  passes the node's memory, so no call can be OOM-killed because of overcommit.
- allocated: the sum of the full `memory_mb` of every container, i.e. what the node would
  need if every container were called at once. An admin cap bounds it to `max_ratio` times
  the node's memory.

The promise to callers is unchanged: a call starts only when its container's full
`memory_mb` fits as resident (`admit_call` for a warm container, `admit_cold` for a new
one). When it does not fit, idle containers are evicted first, lowest keep-alive value
first; when even that is not enough the answer is `Elsewhere` (the call goes cold on
another node). An idle container (a pre-warm, or one moved here by a migration) is admitted
at its deflated size and never evicts anything (`admit_idle`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

DEFAULT_MAX_RATIO = 2.0
"""Default cap on allocated / node memory. With the balloon's defaults an idle container
deflates to roughly its working set + 10 %, which for typical runtimes is a third to a half
of its `memory_mb`, so 2.0 lets the node hold about twice the warm containers while keeping
the inflation debt (allocated - resident) no larger than the node itself: at worst every
idle container is evicted once and the node is back to a plain, fully provisioned one."""


@dataclass(frozen=True)
class OvercommitLimits:
    """The admin's cap on a node's memory overcommit (sum of full limits / node memory)."""

    max_ratio: float = DEFAULT_MAX_RATIO

    def __post_init__(self) -> None:
        if not self.max_ratio >= 1.0:
            raise ValueError("max_ratio must be >= 1.0")

    def allocatable_mb(self, capacity_mb: int) -> float:
        """The most the full limits of a node's containers may add up to."""
        return capacity_mb * self.max_ratio


@dataclass(frozen=True)
class Resident:
    """One container on a node: its full size, its current limit, whether it has calls.

    `keep_value` ranks idle containers for eviction (lowest goes first): the caller's
    keep-alive value, e.g. expected calls before expiry per MB, or simply last use time.
    """

    id: str
    memory_mb: int
    limit_mb: int
    busy: bool = False
    keep_value: float = 0.0
    evictable: bool = True  # False: idle but already going (or otherwise not to be evicted)

    def __post_init__(self) -> None:
        if not 0 < self.limit_mb <= self.memory_mb:
            raise ValueError(f"container {self.id}: limit must be in (0, memory_mb]")
        if self.busy and self.limit_mb != self.memory_mb:
            raise ValueError(f"container {self.id} is busy while deflated")


@dataclass(frozen=True)
class NodeMemory:
    """A node's memory and the containers on it, as overcommit sees them."""

    id: str
    capacity_mb: int
    containers: tuple[Resident, ...] = ()

    @property
    def resident_mb(self) -> int:
        """Sum of the containers' current limits (deflated when idle, full when busy)."""
        return sum(c.limit_mb for c in self.containers)

    @property
    def allocated_mb(self) -> int:
        """Sum of the containers' full memory_mb."""
        return sum(c.memory_mb for c in self.containers)

    @property
    def busy_mb(self) -> int:
        """Memory of the containers running calls."""
        return sum(c.memory_mb for c in self.containers if c.busy)

    @property
    def ratio(self) -> float:
        """Overcommit ratio: allocated / capacity."""
        return self.allocated_mb / self.capacity_mb if self.capacity_mb else 0.0

    def get(self, container_id: str) -> Resident | None:
        """The container of that id, if it is on this node."""
        return next((c for c in self.containers if c.id == container_id), None)

    def replace(self, *containers: Resident, drop: Collection[str] = ()) -> NodeMemory:
        """A copy with `drop` removed and `containers` put in (by id, replacing)."""
        gone = set(drop) | {c.id for c in containers}
        kept = tuple(c for c in self.containers if c.id not in gone)
        return NodeMemory(self.id, self.capacity_mb, kept + containers)


@dataclass(frozen=True)
class Admit:
    """Go ahead on this node, after removing the idle containers in `evict`."""

    evict: tuple[str, ...] = ()


@dataclass(frozen=True)
class Elsewhere:
    """This node cannot take it even after evicting every idle container."""

    reason: str


Admission = Admit | Elsewhere


def _make_room(
    node: NodeMemory,
    extra_resident: int,
    extra_allocated: int,
    protect: Collection[str],
    limits: OvercommitLimits,
) -> Admission:
    """Evict idle containers, lowest keep value first, until both sums fit."""
    resident_short = node.resident_mb + extra_resident - node.capacity_mb
    allocated_short = node.allocated_mb + extra_allocated - limits.allocatable_mb(node.capacity_mb)
    if resident_short <= 0 and allocated_short <= 0:
        return Admit()
    idle = sorted(
        (c for c in node.containers if not c.busy and c.evictable and c.id not in protect),
        # Among equal values, the bigger first: fewer containers lost for the same room.
        key=lambda c: (c.keep_value, -c.limit_mb, c.id),
    )
    chosen: list[str] = []
    for c in idle:
        if resident_short <= 0 and allocated_short <= 0:
            break
        chosen.append(c.id)
        resident_short -= c.limit_mb
        allocated_short -= c.memory_mb
    if resident_short > 0:
        return Elsewhere("busy containers hold the node's memory")
    if allocated_short > 0:
        return Elsewhere("overcommit cap reached")
    return Admit(tuple(chosen))


def admit_call(
    node: NodeMemory, container_id: str, limits: OvercommitLimits | None = None
) -> Admission:
    """May a call start on this (idle or busy) container of the node, once it is inflated?

    Inflating adds `memory_mb - limit_mb` to resident memory; the allocated sum does not
    change. Raises KeyError when the container is not on the node.
    """
    c = node.get(container_id)
    if c is None:
        raise KeyError(f"container {container_id} is not on node {node.id}")
    return _make_room(node, c.memory_mb - c.limit_mb, 0, {c.id}, limits or OvercommitLimits())


def admit_cold(
    node: NodeMemory, memory_mb: int, limits: OvercommitLimits | None = None
) -> Admission:
    """May a new container start here for a call (busy at its full memory_mb)?"""
    if memory_mb > node.capacity_mb:
        return Elsewhere("larger than the node")
    return _make_room(node, memory_mb, memory_mb, (), limits or OvercommitLimits())


def admit_idle(
    node: NodeMemory, memory_mb: int, deflated_mb: int, limits: OvercommitLimits | None = None
) -> bool:
    """May an idle container be kept here at its deflated size? (It evicts nothing.)"""
    limits = limits or OvercommitLimits()
    return (
        memory_mb <= node.capacity_mb
        and node.resident_mb + deflated_mb <= node.capacity_mb
        and node.allocated_mb + memory_mb <= limits.allocatable_mb(node.capacity_mb)
    )


def place_cold(
    nodes: Sequence[NodeMemory], memory_mb: int, limits: OvercommitLimits | None = None
) -> tuple[str, Admit] | None:
    """The node for a new container: one that needs no eviction (the fullest such, to pack),
    else the one whose evictions cost the least keep value; None when no node can take it.
    """
    limits = limits or OvercommitLimits()
    best: tuple[tuple[float, ...], str, Admit] | None = None
    for node in nodes:
        answer = admit_cold(node, memory_mb, limits)
        if not isinstance(answer, Admit):
            continue
        evicted = {c.id: c for c in node.containers if c.id in answer.evict}
        lost = sum(c.keep_value for c in evicted.values())
        free_after = node.capacity_mb - node.resident_mb - memory_mb
        key = (float(bool(answer.evict)), lost, float(len(answer.evict)), float(free_after))
        if best is None or key < best[0]:
            best = (key, node.id, answer)
    return None if best is None else (best[1], best[2])
