"""Placement: which node a function container goes to (online policies).

Pure vector bin packing. Demands and capacities are `Vector`s (tuples, one entry per resource
dimension); Nimbus uses two, `(vcpu, memory_mb)`, with CPU first, but every function here works
in any number of dimensions so the benchmark can run the d-dimensional reference instances.

Two halves:

- online policies (`PlacementPolicy.place(demand, nodes) -> node id | None`): the classic
  first / next / random / worst / best fit and two vector-aware fits (dot-product alignment and
  L2 norm of the residual, after Panigrahy et al., "Heuristics for Vector Bin Packing", 2011).
  CPU (dimension 0) may be overcommitted by a ratio; no other dimension ever is.
- offline packing lives in `invoker.packing` (how few nodes a set of containers needs).

No I/O, no clock.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Vector = tuple[float, ...]
"""A resource vector. Integers stay integers, so integer sizes are compared exactly."""

CPU_DIM = 0
"""The only compressible dimension: the one an overcommit ratio applies to."""
MEMORY_DIM = 1

_FLOAT_TOLERANCE = 1e-9


# --------------------------------------------------------------------------------------------
# Vectors
# --------------------------------------------------------------------------------------------


def vadd(a: Vector, b: Vector) -> Vector:
    """Component-wise sum."""
    return tuple(x + y for x, y in zip(a, b, strict=True))


def vsub(a: Vector, b: Vector) -> Vector:
    """Component-wise difference."""
    return tuple(x - y for x, y in zip(a, b, strict=True))


def vsum(vectors: Sequence[Vector], dims: int) -> Vector:
    """Component-wise sum of many vectors (the zero vector of `dims` when there are none)."""
    total: list[float] = [0] * dims
    for v in vectors:
        for h, x in enumerate(v):
            total[h] += x
    return tuple(total)


def within(x: float, limit: float) -> bool:
    """x <= limit, exactly for integers and with a tiny relative tolerance for floats."""
    # Integers compare exactly; floats (fractional vCPUs) get a relative tolerance so that
    # 0.1 + 0.2 vCPU still fits in 0.3.
    if x <= limit:
        return True
    if isinstance(x, int) and isinstance(limit, int):
        return False
    return x - limit <= _FLOAT_TOLERANCE * max(1.0, abs(limit))


def fits_within(demand: Vector, allocated: Vector, limit: Vector) -> bool:
    """True when `allocated + demand <= limit` in every dimension."""
    return all(within(a + d, c) for d, a, c in zip(demand, allocated, limit, strict=True))


@dataclass(frozen=True)
class Resources:
    """The two dimensions Nimbus places by: vCPUs (may be fractional) and memory in MB."""

    vcpu: float
    memory_mb: int

    def vector(self) -> Vector:
        """As a `Vector`, CPU first."""
        return (self.vcpu, self.memory_mb)

    @classmethod
    def of(cls, v: Vector) -> Resources:
        """From a two-dimensional `Vector`."""
        if len(v) != 2:
            raise ValueError(f"expected (vcpu, memory_mb), got {v!r}")
        return cls(vcpu=v[CPU_DIM], memory_mb=int(v[MEMORY_DIM]))


# --------------------------------------------------------------------------------------------
# What the policies see
# --------------------------------------------------------------------------------------------


class NodeState(enum.StrEnum):
    """Life of a node (VM). Only READY nodes take new containers."""

    PROVISIONING = "provisioning"
    READY = "ready"
    DRAINING = "draining"
    RELEASED = "released"


@dataclass(frozen=True)
class NodeView:
    """A node as placement sees it: real capacity and the sum of what is allocated on it."""

    id: str
    capacity: Vector
    allocated: Vector
    state: NodeState = NodeState.READY


@dataclass(frozen=True)
class PlacementLimits:
    """How full a node may get.

    `cpu_overcommit` multiplies the CPU capacity (CPU time is shared, so a node may promise
    more vCPUs than it has); memory and any other dimension are never overcommitted.
    `hot_spot_threshold` (a fraction of the placeable limit, in the fullest dimension): a node
    already above it takes a container only when no other node can.
    """

    cpu_overcommit: float = 1.0
    hot_spot_threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.cpu_overcommit >= 1.0:
            raise ValueError("cpu_overcommit must be >= 1.0")
        t = self.hot_spot_threshold
        if t is not None and not 0.0 < t <= 1.0:
            raise ValueError("hot_spot_threshold must be in (0, 1]")

    def limit(self, capacity: Vector) -> Vector:
        """The most that may be allocated on a node of this capacity."""
        if self.cpu_overcommit == 1.0:
            return capacity
        return tuple(c * self.cpu_overcommit if h == CPU_DIM else c for h, c in enumerate(capacity))

    def fits(self, demand: Vector, node: NodeView) -> bool:
        """True when `demand` can be added to `node` without passing its limit."""
        return fits_within(demand, node.allocated, self.limit(node.capacity))

    def utilisation(self, node: NodeView) -> float:
        """Allocated / limit in the node's fullest dimension (0 for an empty node)."""
        limit = self.limit(node.capacity)
        return max(
            (a / c for a, c in zip(node.allocated, limit, strict=True) if c > 0), default=0.0
        )


# --------------------------------------------------------------------------------------------
# Online policies
# --------------------------------------------------------------------------------------------


@runtime_checkable
class PlacementPolicy(Protocol):
    """Chooses the node for one container, or None when no ready node can take it."""

    name: str
    limits: PlacementLimits

    def place(self, demand: Vector, nodes: Sequence[NodeView]) -> str | None:
        """The id of the node that should run a container of size `demand`, or None."""
        ...


def _normalised_free(node: NodeView, limit: Vector) -> list[float]:
    return [(c - a) / c if c > 0 else 0.0 for a, c in zip(node.allocated, limit, strict=True)]


def _normalised(v: Vector, limit: Vector) -> list[float]:
    return [x / c if c > 0 else 0.0 for x, c in zip(v, limit, strict=True)]


def measure_of(values: Sequence[float], kind: str) -> float:
    """The size of a vector by `kind`: l1, l2, linf (or the names the policies use)."""
    if kind == "l1":
        return math.fsum(values)
    if kind == "l2":
        return math.fsum(x * x for x in values)
    if kind == "linf":
        return max(values, default=0.0)
    raise ValueError(f"unknown measure {kind!r} (l1, l2, linf)")


class _FitPolicy:
    """Shared feasibility and hot-spot filtering; subclasses choose among the candidates."""

    name = ""

    def __init__(self, limits: PlacementLimits | None = None) -> None:
        self.limits = limits or PlacementLimits()

    def candidates(self, demand: Vector, nodes: Sequence[NodeView]) -> list[NodeView]:
        """Ready nodes that fit `demand`, in the given order; only cool ones if any is cool."""
        fitting = [n for n in nodes if n.state is NodeState.READY and self.limits.fits(demand, n)]
        threshold = self.limits.hot_spot_threshold
        if threshold is not None:
            cool = [n for n in fitting if self.limits.utilisation(n) <= threshold]
            if cool:
                return cool
        return fitting

    def place(self, demand: Vector, nodes: Sequence[NodeView]) -> str | None:
        """See `PlacementPolicy.place`."""
        candidates = self.candidates(demand, nodes)
        if not candidates:
            return None
        return self.choose(demand, candidates).id

    def choose(self, demand: Vector, candidates: list[NodeView]) -> NodeView:
        """One of `candidates` (never empty): what distinguishes the policies."""
        raise NotImplementedError


class FirstFit(_FitPolicy):
    """The first node, in the order given, that fits."""

    name = "first-fit"

    def choose(self, demand: Vector, candidates: list[NodeView]) -> NodeView:
        return candidates[0]


class NextFit(_FitPolicy):
    """Keep filling the node used last; once something does not fit, move on and never look back.

    The cursor is the id of the current node. Nodes before it in the list are not considered
    (unless `cyclic`, which wraps around to them). When nothing fits, the cursor moves past the
    last node listed, so the node opened for this demand becomes the current one.
    """

    name = "next-fit"

    def __init__(self, limits: PlacementLimits | None = None, *, cyclic: bool = False) -> None:
        super().__init__(limits)
        self.cyclic = cyclic
        self._cursor: str | None = None
        self._past: str | None = None  # set when nothing fitted: start after this node

    def place(self, demand: Vector, nodes: Sequence[NodeView]) -> str | None:
        """See `PlacementPolicy.place`."""
        ids = [n.id for n in nodes]
        if self._past is not None and self._past in ids:
            start = ids.index(self._past) + 1
        elif self._cursor is not None and self._cursor in ids:
            start = ids.index(self._cursor)
        else:
            start = 0
        order = list(nodes[start:]) + (list(nodes[:start]) if self.cyclic else [])
        fitting = {n.id for n in self.candidates(demand, order)}
        for n in order:
            if n.id in fitting:
                self._cursor, self._past = n.id, None
                return n.id
        if nodes:
            self._past = nodes[-1].id
        return None


class RandomFit(_FitPolicy):
    """A node chosen uniformly at random among those that fit (seeded for reproducibility)."""

    name = "random-fit"

    def __init__(
        self, limits: PlacementLimits | None = None, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(limits)
        self.rng = rng if rng is not None else random.Random(0)

    def choose(self, demand: Vector, candidates: list[NodeView]) -> NodeView:
        return candidates[self.rng.randrange(len(candidates))]


class WorstFit(_FitPolicy):
    """Least full first: the node with the most free capacity (spreads load).

    Free capacity is normalised by each node's limit and combined with `measure` (l1 = sum,
    l2 = sum of squares, linf = max); ties go to the earlier node.
    """

    name = "worst-fit"

    def __init__(self, limits: PlacementLimits | None = None, *, measure: str = "l1") -> None:
        super().__init__(limits)
        measure_of((), measure)
        self.measure = measure

    def free(self, node: NodeView) -> float:
        """The normalised free capacity the policy ranks nodes by."""
        return measure_of(_normalised_free(node, self.limits.limit(node.capacity)), self.measure)

    def choose(self, demand: Vector, candidates: list[NodeView]) -> NodeView:
        return max(candidates, key=self.free)  # max keeps the first of equals


class BestFit(WorstFit):
    """Most full first: the node with the least free capacity (packs tightly)."""

    name = "best-fit"

    def choose(self, demand: Vector, candidates: list[NodeView]) -> NodeView:
        return min(candidates, key=self.free)


class DotProductFit(_FitPolicy):
    """The node whose free capacity is best aligned with the demand: max of demand . free.

    Both normalised by the node's limit, so a node with room exactly where the demand is large
    wins: it keeps the dimensions of each node in balance.
    """

    name = "dot-product"

    def score(self, demand: Vector, node: NodeView) -> float:
        """demand . free, normalised."""
        limit = self.limits.limit(node.capacity)
        return math.fsum(
            d * f
            for d, f in zip(_normalised(demand, limit), _normalised_free(node, limit), strict=True)
        )

    def choose(self, demand: Vector, candidates: list[NodeView]) -> NodeView:
        return max(candidates, key=lambda n: self.score(demand, n))


class L2NormFit(_FitPolicy):
    """The node left with the smallest residual after placement: min of |free - demand|^2."""

    name = "l2-norm"

    def residual(self, demand: Vector, node: NodeView) -> float:
        """Squared L2 norm of the normalised free capacity that would remain."""
        limit = self.limits.limit(node.capacity)
        return math.fsum(
            (f - d) ** 2
            for d, f in zip(_normalised(demand, limit), _normalised_free(node, limit), strict=True)
        )

    def choose(self, demand: Vector, candidates: list[NodeView]) -> NodeView:
        return min(candidates, key=lambda n: self.residual(demand, n))


POLICY_NAMES: tuple[str, ...] = (
    "first-fit",
    "next-fit",
    "random-fit",
    "worst-fit",
    "best-fit",
    "dot-product",
    "l2-norm",
)


DEFAULT_POLICY = "best-fit"
"""The configured default. On the reference set it is the best classic online heuristic
(1.079 x OPT); on the Azure day every policy lands within 1 % of the others once the pool
consolidates, and best fit moves the fewest containers doing it (bench/placement.py)."""


def placement_policy_by_name(
    name: str,
    *,
    cpu_overcommit: float = 1.0,
    hot_spot_threshold: float | None = None,
    rng: random.Random | None = None,
    measure: str = "l1",
    cyclic: bool = False,
) -> PlacementPolicy:
    """A fresh policy from its configuration name (one of `POLICY_NAMES`).

    `rng` only matters for random-fit, `measure` for worst/best-fit, `cyclic` for next-fit.
    """
    limits = PlacementLimits(cpu_overcommit=cpu_overcommit, hot_spot_threshold=hot_spot_threshold)
    if name == "first-fit":
        return FirstFit(limits)
    if name == "next-fit":
        return NextFit(limits, cyclic=cyclic)
    if name == "random-fit":
        return RandomFit(limits, rng=rng)
    if name == "worst-fit":
        return WorstFit(limits, measure=measure)
    if name == "best-fit":
        return BestFit(limits, measure=measure)
    if name == "dot-product":
        return DotProductFit(limits)
    if name == "l2-norm":
        return L2NormFit(limits)
    raise ValueError(f"unknown placement policy {name!r}; choose from {', '.join(POLICY_NAMES)}")
