"""Live migration of warm containers: where each goes, the make-before-break steps, the record.

Pure: no I/O, no clock. A migration is stateless (the function's code is started afresh on
the target, no process memory is copied), in four steps per container, in this order:

1. `start-target`: start the replacement on the target node (a stem cell there, or a
   cold start) and wait until it is initialised;
2. `route`: new calls of the function go to the replacement;
3. `wait-in-flight`: calls already running on the source finish there;
4. `remove-source`: the source container is removed.

The source serves until the replacement can, so callers see neither a cold start nor an
error; the downtime recorded is the time no container could serve the function (0 when
the steps run in order). A drain runs every container's step 1 first, then every step 2,
and so on: the steps of different containers do not depend on each other.

`MigrationRecord` is what the runtime measures for each migration; `to_json` is its shape
in `GET /v1/migrations`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from invoker.nodes.placement import (
    MEMORY_DIM,
    NodeState,
    NodeView,
    PlacementLimits,
    Vector,
    vadd,
    vsub,
    within,
)


@dataclass(frozen=True)
class NodeLoad:
    """A node as migration policy sees it: allocations, measured use and the images it holds.

    `allocated` is the sum of allocations (vCPU, memory_mb) placement checks fits against;
    with memory overcommit, pass resident memory there and deflated sizes as demands.
    `load` is measured use: (vCPUs busy, from the cgroup's CPU time; memory_mb in use).
    `memory_room` is what the overcommit cap still leaves for full memory limits (the
    node's memory times the cap, less every full limit placed there): placement refuses a
    container past it even when resident memory has room, so the policies must too.
    """

    id: str
    capacity: Vector
    allocated: Vector
    load: Vector
    state: NodeState = NodeState.READY
    images: frozenset[str] = frozenset()
    memory_room: float = math.inf

    def pressure(self, extra: Vector | None = None) -> float:
        """Use / capacity in the node's fullest dimension (with `extra` added, if given)."""
        load = self.load if extra is None else vadd(self.load, extra)
        return max((u / c for u, c in zip(load, self.capacity, strict=True) if c > 0), default=0.0)

    def view(self) -> NodeView:
        """What placement's limits check fits against."""
        return NodeView(self.id, self.capacity, self.allocated, self.state)

    def plus(self, demand: Vector, load: Vector, image: str = "") -> NodeLoad:
        """The node with one more container on it."""
        images = self.images | {image} if image else self.images
        return NodeLoad(
            self.id,
            self.capacity,
            vadd(self.allocated, demand),
            vadd(self.load, load),
            self.state,
            images,
            self.memory_room - demand[MEMORY_DIM],
        )

    def minus(self, demand: Vector, load: Vector) -> NodeLoad:
        """The node with one container fewer (its image stays cached)."""
        return NodeLoad(
            self.id,
            self.capacity,
            vsub(self.allocated, demand),
            tuple(max(0.0, x) for x in vsub(self.load, load)),
            self.state,
            self.images,
            self.memory_room + demand[MEMORY_DIM],
        )


@dataclass(frozen=True)
class Movable:
    """A container that could move: what it takes, what it uses, and what a move costs.

    `came_from` is the node it last moved away from, `moved_at` when (monotonic seconds):
    the policies never send a container back where it just came from.
    """

    id: str
    node: str
    demand: Vector
    load: Vector
    image: str = ""
    image_bytes: int = 0
    init_s: float = 0.5
    in_flight: int = 0
    movable: bool = True
    came_from: str | None = None
    moved_at: float | None = None


@dataclass(frozen=True)
class MoveCost:
    """A migration's cost: estimated by the policies, measured by the runtime."""

    downtime_s: float = 0.0
    init_s: float = 0.0
    cpu_source_s: float = 0.0
    cpu_target_s: float = 0.0
    bytes_moved: int = 0

    def to_json(self) -> dict[str, Any]:
        """As in `GET /v1/migrations`."""
        return {
            "downtime_s": round(self.downtime_s, 6),
            "init_s": round(self.init_s, 6),
            "cpu_source_s": round(self.cpu_source_s, 6),
            "cpu_target_s": round(self.cpu_target_s, 6),
            "bytes_moved": self.bytes_moved,
        }


def total_cost(costs: Iterable[MoveCost]) -> MoveCost:
    """The sum of many moves' costs."""
    costs = list(costs)
    return MoveCost(
        sum(c.downtime_s for c in costs),
        sum(c.init_s for c in costs),
        sum(c.cpu_source_s for c in costs),
        sum(c.cpu_target_s for c in costs),
        sum(c.bytes_moved for c in costs),
    )


@dataclass(frozen=True)
class Move:
    """One container to move, where, and what it should cost."""

    container: str
    source: str
    target: str
    cost: MoveCost


def estimate_cost(m: Movable, target: NodeLoad) -> MoveCost:
    """What moving `m` to `target` should cost.

    Make-before-break: no downtime. The target pays the init (its CPU bounded by the
    container's vCPU share) and the image copy when it does not hold the image yet; the
    source pays nothing beyond the calls it would have run anyway.
    """
    copy = 0 if not m.image or m.image in target.images else m.image_bytes
    return MoveCost(0.0, m.init_s, 0.0, m.init_s * min(1.0, m.demand[0]), copy)


def choose_target(
    m: Movable,
    nodes: Sequence[NodeLoad],
    limits: PlacementLimits | None = None,
    *,
    ceiling: float = 1.0,
    exclude: Collection[str] = (),
) -> NodeLoad | None:
    """Where `m` should go: the least loaded ready node that fits it and stays at or below
    `ceiling` pressure with it; never its own node or the one it came from.

    Ties: the node that already holds the image (nothing to copy), then the id.
    """
    limits = limits or PlacementLimits()
    banned = {m.node, *exclude}
    if m.came_from is not None:
        banned.add(m.came_from)
    best: tuple[float, int, str] | None = None
    chosen: NodeLoad | None = None
    for n in nodes:
        if n.id in banned or n.state is not NodeState.READY:
            continue
        if not limits.fits(m.demand, n.view()) or not within(m.demand[MEMORY_DIM], n.memory_room):
            continue
        after = n.pressure(m.load)
        if after > ceiling:
            continue
        key = (after, estimate_cost(m, n).bytes_moved, n.id)
        if best is None or key < best:
            best, chosen = key, n
    return chosen


class StepKind(enum.StrEnum):
    """The make-before-break steps, in the order they run for one container."""

    START_TARGET = "start-target"
    ROUTE = "route"
    WAIT_IN_FLIGHT = "wait-in-flight"
    REMOVE_SOURCE = "remove-source"


@dataclass(frozen=True)
class Step:
    """One step of one container's migration."""

    kind: StepKind
    container: str
    source: str
    target: str


def steps_for(move: Move) -> tuple[Step, ...]:
    """A single container's migration, make-before-break."""
    return tuple(Step(k, move.container, move.source, move.target) for k in StepKind)


def phased(moves: Iterable[Move]) -> tuple[Step, ...]:
    """Many migrations as one sequence: every container's step 1, then every step 2, ...

    Each container's steps stay in order; across containers nothing waits for another.
    """
    moves = list(moves)
    return tuple(Step(k, m.container, m.source, m.target) for k in StepKind for m in moves)


@dataclass(frozen=True)
class DrainPlan:
    """How to empty a node: the moves, their steps, and what fits nowhere."""

    node: str
    moves: tuple[Move, ...]
    unplaced: tuple[str, ...]

    @property
    def steps(self) -> tuple[Step, ...]:
        """All the moves, phased."""
        return phased(self.moves)

    @property
    def complete(self) -> bool:
        """True when every container has a target."""
        return not self.unplaced


def plan_drain(
    node: str,
    containers: Sequence[Movable],
    nodes: Sequence[NodeLoad],
    limits: PlacementLimits | None = None,
    *,
    ceiling: float = 1.0,
) -> DrainPlan:
    """Move every container off `node`, biggest first, each to the least loaded node that
    fits and stays at or below `ceiling` pressure (counting what this plan already sent).

    A drain moves every container, pinned ones too (the node is going away); what fits
    nowhere is listed in `unplaced`, for the caller to scale out or let finish.
    """
    pool = {n.id: n for n in nodes if n.id != node}
    moves: list[Move] = []
    unplaced: list[str] = []
    # Memory first: it is never overcommitted, so the big ones are the hard ones to place.
    order = sorted(containers, key=lambda m: (tuple(-x for x in reversed(m.demand)), m.id))
    for m in order:
        # The node is going away: going back where it came from is fine.
        here = replace(m, node=node, came_from=None)
        target = choose_target(here, list(pool.values()), limits, ceiling=ceiling)
        if target is None:
            unplaced.append(m.id)
            continue
        moves.append(Move(m.id, node, target.id, estimate_cost(here, target)))
        pool[target.id] = target.plus(m.demand, m.load, m.image)
    return DrainPlan(node, tuple(moves), tuple(unplaced))


class MigrationState(enum.StrEnum):
    """Where a recorded migration is."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class MigrationRecord:
    """One migration as it happened, with its measured cost.

    Times are wall-clock seconds since the epoch (shown to admins); `cost.downtime_s` is the
    time no container could serve the function, `cost.init_s` the replacement's start on
    the target, `cost.cpu_*_s` CPU time spent on each node for the move, `cost.bytes_moved`
    what was copied (the image, when pushed to a docker-hosts engine).
    """

    id: str
    function: str
    container: str
    source: str
    target: str
    reason: str
    started_at: float
    replacement: str | None = None
    finished_at: float | None = None
    state: MigrationState = MigrationState.RUNNING
    cost: MoveCost = MoveCost()
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        """From the first step to the source's removal (None while running)."""
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        """One entry of `GET /v1/migrations`."""
        duration = self.duration_s
        return {
            "id": self.id,
            "function": self.function,
            "container": self.container,
            "replacement": self.replacement,
            "source": self.source,
            "target": self.target,
            "reason": self.reason,
            "state": self.state.value,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": None if duration is None else round(duration, 6),
            "cost": self.cost.to_json(),
            "error": self.error,
        }


def migrations_json(records: Iterable[MigrationRecord], limit: int = 100) -> dict[str, Any]:
    """The body of `GET /v1/migrations`: the latest `limit` records, newest first, and totals."""
    ordered = sorted(records, key=lambda r: (r.started_at, r.id), reverse=True)
    done = [r for r in ordered if r.state is MigrationState.DONE]
    return {
        "migrations": [r.to_json() for r in ordered[:limit]],
        "total": len(ordered),
        "failed": sum(1 for r in ordered if r.state is MigrationState.FAILED),
        "downtime_s": round(sum(r.cost.downtime_s for r in done), 6),
        "bytes_moved": sum(r.cost.bytes_moved for r in done),
    }
