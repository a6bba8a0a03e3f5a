"""Offline vector bin packing heuristics: how few nodes a set of containers needs.

FFD / BFD by several size measures and the bin-centric heuristics of Panigrahy et al.
("Heuristics for Vector Bin Packing", 2011), on `PackingInstance`, which compares sizes
exactly in integers. No I/O. `consolidation.py` builds its planner on these.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

from invoker.nodes.placement import Vector, measure_of, vsum, within

Bins = list[list[int]]
"""A packing: each bin is the list of indices (into the items) it holds."""

IntVector = tuple[int, ...]


class PackingInstance:
    """Validated integer items and bin capacity, with each vector packed into one Python int.

    Each dimension gets a bit field with a guard bit above it. A residual is stored with its
    guard bits set, so "does item s fit in residual r in every dimension" is one subtraction
    and one mask -- ((r - s) & G) == G -- and the difference is already the new residual.
    Fields hold twice the largest capacity, so the sum of two items never spills over.
    Exact, and far faster in pure Python than a loop over dimensions.
    """

    def __init__(self, items: Sequence[Vector], capacity: Vector) -> None:
        self.cap = self._as_int(capacity)
        self.items = [self._as_int(v) for v in items]
        self.dims = len(self.cap)
        for i, v in enumerate(self.items):
            if len(v) != self.dims:
                raise ValueError(f"item {i} has {len(v)} dimensions, capacity has {self.dims}")
            if any(x > c for x, c in zip(v, self.cap, strict=True)):
                raise ValueError(f"item {i} {v!r} is larger than a bin {self.cap!r}")
        bits = max(max(self.cap, default=1), 1).bit_length() + 1
        self.shift = bits + 1
        self.guard = sum(1 << (h * self.shift + bits) for h in range(self.dims))
        self.enc = [self.encode(v) for v in self.items]
        self.empty = self.encode(self.cap) | self.guard  # guarded residual of an empty bin
        inv = [1.0 / c if c else 0.0 for c in self.cap]
        self.norm = [[x * w for x, w in zip(v, inv, strict=True)] for v in self.items]

    @staticmethod
    def _as_int(v: Vector) -> IntVector:
        out = tuple(int(x) for x in v)
        if out != tuple(v) or any(x < 0 for x in out):
            raise ValueError(f"offline packing needs non-negative integer sizes, got {v!r}")
        return out

    def encode(self, v: IntVector) -> int:
        """`v` packed into one int, a bit field per dimension (guard bits clear)."""
        return sum(x << (h * self.shift) for h, x in enumerate(v))

    def lower_bound(self) -> int:
        """See the module-level `lower_bound`."""
        best = 1 if self.items else 0
        for h, c in enumerate(self.cap):
            if c == 0:
                continue
            total = sum(v[h] for v in self.items)
            best = max(best, -(-total // c), sum(1 for v in self.items if 2 * v[h] > c))
        return best

    def sizes(self, kind: str) -> list[float]:
        """Normalised sizes combined by `kind` (l1, l2, linf; avg-l2 weighs each dimension by
        the items' total normalised demand in it, so busy dimensions count more)."""
        if kind == "avg-l2":
            w = [math.fsum(col) for col in zip(*self.norm, strict=True)] if self.norm else []
            return [math.fsum(wh * x * x for wh, x in zip(w, v, strict=True)) for v in self.norm]
        return [measure_of(v, kind) for v in self.norm]

    def decreasing(self, kind: str) -> list[int]:
        """Item indices by decreasing size (`sizes(kind)`)."""
        sizes = self.sizes(kind)
        return sorted(range(len(sizes)), key=lambda i: -sizes[i])  # stable: file order on ties

    def first_fit(self, order: Sequence[int]) -> Bins:
        """Each item, in `order`, into the first bin it fits in."""
        bins: Bins = []
        res: list[int] = []
        enc, guard, empty = self.enc, self.guard, self.empty
        for i in order:
            s = enc[i]
            for k, r in enumerate(res):
                r -= s
                if r & guard == guard:
                    res[k] = r
                    bins[k].append(i)
                    break
            else:
                bins.append([i])
                res.append(empty - s)
        return bins

    def best_fit(self, order: Sequence[int], kind: str) -> Bins:
        """Each item, in `order`, into the feasible bin with the least residual (normalised,
        combined by `kind`); the earliest such bin on ties."""
        bins: Bins = []
        res: list[int] = []
        res_vec: list[list[float]] = []
        res_measure: list[float] = []
        enc, guard, empty = self.enc, self.guard, self.empty
        for i in order:
            s = enc[i]
            best = -1
            for k, r in enumerate(res):
                if (r - s) & guard == guard and (best < 0 or res_measure[k] < res_measure[best]):
                    best = k
            if best < 0:
                bins.append([])
                res.append(empty)
                res_vec.append([1.0] * self.dims)
                res_measure.append(0.0)
                best = len(bins) - 1
            bins[best].append(i)
            res[best] -= s
            rv = res_vec[best] = [r - x for r, x in zip(res_vec[best], self.norm[i], strict=True)]
            res_measure[best] = measure_of(rv, kind)
        return bins

    def bin_centric(self, score: str) -> Bins:
        """See the module-level `bin_centric`."""
        n = len(self.items)
        norm, enc, guard = self.norm, self.enc, self.guard
        if score == "dot-product":
            # Weights = mean normalised demand per dimension.
            weights = [math.fsum(col) / n for col in zip(*norm, strict=True)] if n else []
            coef = [[w * x for w, x in zip(weights, v, strict=True)] for v in norm]
            bias = [0.0] * n
        elif score == "norm":
            # -(|r - x|^2) = 2 r.x - |x|^2 - |r|^2, and |r|^2 is the same for every item.
            coef = [[2.0 * x for x in v] for v in norm]
            bias = [-math.fsum(x * x for x in v) for v in norm]
        else:
            raise ValueError(f"unknown bin-centric score {score!r} (dot-product, norm)")
        mul = operator.mul
        remaining = list(range(n))
        bins: Bins = []
        while remaining:
            residual = self.empty
            rv = [1.0] * self.dims
            current: list[int] = []
            while True:
                best_pos, best_score = -1, -math.inf
                for pos, i in enumerate(remaining):
                    if (residual - enc[i]) & guard == guard:
                        sc = sum(map(mul, coef[i], rv)) + bias[i]
                        if sc > best_score:
                            best_pos, best_score = pos, sc
                if best_pos < 0:
                    break
                i = remaining.pop(best_pos)
                current.append(i)
                residual -= enc[i]
                rv = [r - x for r, x in zip(rv, norm[i], strict=True)]
            bins.append(current)
        return bins


def lower_bound(items: Sequence[Vector], capacity: Vector) -> int:
    """A lower bound on the bins needed: the largest of, per dimension, ceil(total / capacity)
    and the number of items bigger than half a bin (no two of those share a bin)."""
    return PackingInstance(items, capacity).lower_bound()


def validate_packing(items: Sequence[Vector], capacity: Vector, bins: Bins) -> None:
    """Raise ValueError unless every item is in exactly one bin and no bin is over capacity."""
    seen = sorted(i for b in bins for i in b)
    if seen != list(range(len(items))):
        raise ValueError("items missing from or repeated in the packing")
    for k, b in enumerate(bins):
        load = vsum([items[i] for i in b], len(capacity))
        if not all(within(x, c) for x, c in zip(load, capacity, strict=True)):
            raise ValueError(f"bin {k} is over capacity: {load!r} > {capacity!r}")


def first_fit(items: Sequence[Vector], capacity: Vector) -> Bins:
    """First fit in the order given (the online heuristic, as a batch)."""
    inst = PackingInstance(items, capacity)
    return inst.first_fit(range(len(inst.items)))


def first_fit_decreasing(items: Sequence[Vector], capacity: Vector, measure: str = "l2") -> Bins:
    """FFD: items by decreasing normalised size (`measure`: l1, l2, linf, avg-l2), first fit."""
    inst = PackingInstance(items, capacity)
    return inst.first_fit(inst.decreasing(measure))


def best_fit_decreasing(items: Sequence[Vector], capacity: Vector, measure: str = "l2") -> Bins:
    """BFD: items by decreasing size, each into the feasible bin with the least residual
    (normalised residual combined by the same `measure`); the earliest bin on ties."""
    inst = PackingInstance(items, capacity)
    return inst.best_fit(inst.decreasing(measure), "l2" if measure == "avg-l2" else measure)


def bin_centric(items: Sequence[Vector], capacity: Vector, score: str = "dot-product") -> Bins:
    """Bin-centric packing (Panigrahy et al.): open one bin, fill it with the best-scoring item
    that fits until none does, then open the next.

    `score`: "dot-product" = max sum_h w_h * size_h * residual_h (normalised; weights w = the
    mean normalised demand per dimension), or "norm" = min sum_h (residual_h - size_h)^2.
    """
    return PackingInstance(items, capacity).bin_centric(score)


HEURISTICS: dict[str, Callable[[PackingInstance], Bins]] = {
    "ffd-l2": lambda inst: inst.first_fit(inst.decreasing("l2")),
    "ffd-l1": lambda inst: inst.first_fit(inst.decreasing("l1")),
    "ffd-linf": lambda inst: inst.first_fit(inst.decreasing("linf")),
    "ffd-avg-l2": lambda inst: inst.first_fit(inst.decreasing("avg-l2")),
    "bfd-l2": lambda inst: inst.best_fit(inst.decreasing("l2"), "l2"),
    "bin-centric-norm": lambda inst: inst.bin_centric("norm"),
    "bin-centric-dot": lambda inst: inst.bin_centric("dot-product"),
}
"""The offline heuristics by name, each packing a `PackingInstance`."""

OFFLINE_HEURISTICS: tuple[str, ...] = tuple(HEURISTICS)
"""Names of the offline heuristics, for `offline_packing`."""


def offline_packing(name: str, items: Sequence[Vector], capacity: Vector) -> Bins:
    """Pack `items` with the offline heuristic `name` (one of `OFFLINE_HEURISTICS`)."""
    if name not in HEURISTICS:
        raise ValueError(f"unknown heuristic {name!r}; choose from {', '.join(HEURISTICS)}")
    return HEURISTICS[name](PackingInstance(items, capacity))
