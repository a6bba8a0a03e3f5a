"""Offline vector bin packing: how few nodes a set of containers needs.

FFD / BFD by several size measures, the bin-centric heuristics of Panigrahy et al.
("Heuristics for Vector Bin Packing", 2011), and `ConsolidationPlanner`, a portfolio of
those improved by a local search that empties bins, used to plan consolidation of the pool.
Sizes are compared exactly in integers. No I/O; the planner's time budget is injectable.
"""

from __future__ import annotations

import math
import operator
import random
import time
from collections.abc import Callable, Sequence

from invoker.nodes.placement import Vector, measure_of, vsum, within

# --------------------------------------------------------------------------------------------
# Offline packing (consolidation planning)
# --------------------------------------------------------------------------------------------

Bins = list[list[int]]
"""A packing: each bin is the list of indices (into the items) it holds."""

IntVector = tuple[int, ...]


class _Instance:
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
        return sum(x << (h * self.shift) for h, x in enumerate(v))

    def lower_bound(self) -> int:
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
        sizes = self.sizes(kind)
        return sorted(range(len(sizes)), key=lambda i: -sizes[i])  # stable: file order on ties

    def first_fit(self, order: Sequence[int]) -> Bins:
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
        # Each item into the feasible bin with the least residual (normalised, combined by
        # `kind`); the earliest such bin on ties.
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
    return _Instance(items, capacity).lower_bound()


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
    inst = _Instance(items, capacity)
    return inst.first_fit(range(len(inst.items)))


def first_fit_decreasing(items: Sequence[Vector], capacity: Vector, measure: str = "l2") -> Bins:
    """FFD: items by decreasing normalised size (`measure`: l1, l2, linf, avg-l2), first fit."""
    inst = _Instance(items, capacity)
    return inst.first_fit(inst.decreasing(measure))


def best_fit_decreasing(items: Sequence[Vector], capacity: Vector, measure: str = "l2") -> Bins:
    """BFD: items by decreasing size, each into the feasible bin with the least residual
    (normalised residual combined by the same `measure`); the earliest bin on ties."""
    inst = _Instance(items, capacity)
    return inst.best_fit(inst.decreasing(measure), "l2" if measure == "avg-l2" else measure)


def bin_centric(items: Sequence[Vector], capacity: Vector, score: str = "dot-product") -> Bins:
    """Bin-centric packing (Panigrahy et al.): open one bin, fill it with the best-scoring item
    that fits until none does, then open the next.

    `score`: "dot-product" = max sum_h w_h * size_h * residual_h (normalised; weights w = the
    mean normalised demand per dimension), or "norm" = min sum_h (residual_h - size_h)^2.
    """
    return _Instance(items, capacity).bin_centric(score)


_HEURISTICS: dict[str, Callable[[_Instance], Bins]] = {
    "ffd-l2": lambda inst: inst.first_fit(inst.decreasing("l2")),
    "ffd-l1": lambda inst: inst.first_fit(inst.decreasing("l1")),
    "ffd-linf": lambda inst: inst.first_fit(inst.decreasing("linf")),
    "ffd-avg-l2": lambda inst: inst.first_fit(inst.decreasing("avg-l2")),
    "bfd-l2": lambda inst: inst.best_fit(inst.decreasing("l2"), "l2"),
    "bin-centric-norm": lambda inst: inst.bin_centric("norm"),
    "bin-centric-dot": lambda inst: inst.bin_centric("dot-product"),
}

OFFLINE_HEURISTICS: tuple[str, ...] = tuple(_HEURISTICS)
"""Names of the offline heuristics, for `offline_packing`."""


def offline_packing(name: str, items: Sequence[Vector], capacity: Vector) -> Bins:
    """Pack `items` with the offline heuristic `name` (one of `OFFLINE_HEURISTICS`)."""
    if name not in _HEURISTICS:
        raise ValueError(f"unknown heuristic {name!r}; choose from {', '.join(_HEURISTICS)}")
    return _HEURISTICS[name](_Instance(items, capacity))


_PAIR_POOL = 8
_Swap = tuple[float, int, tuple[int, ...]]
"""One side of a swap: weighted size, packed size vector, the items."""

_STUCK_GROWTH = 1.05
"""How much heavier pool items get each time no swap helps (tuned on the benchmark set)."""
"""Pool items considered for two-for-one swaps: the heaviest few, so big pools stay cheap."""


class _EmptyBinSearch:
    """Local search that packs the items of two bins into the other bins plus one.

    Consistent neighbourhood search (after Vasquez and Zufferey, and Buljubasic and Vasquez's
    use of it for bin packing): every bin stays feasible at all times; the items of the two
    least-loaded bins start in a pool, and the search succeeds as soon as the pool fits in a
    single bin. Moves: put a pool item into a bin where it fits; swap one or two pool items with
    one or two items of a bin when that lowers the pool's weighted size. When no swap helps,
    the items stuck in the pool get heavier, so they become worth swapping in and the search
    keeps moving instead of cycling.
    """

    def __init__(
        self,
        inst: _Instance,
        rng: random.Random,
        clock: Callable[[], float],
        deadline: float,
        max_iterations: int | None,
    ) -> None:
        self.inst = inst
        # The pool may hold far more than a bin, so it is checked with fields wide enough for
        # every item at once.
        wide_cap = tuple(max(c, sum(v[h] for v in inst.items)) for h, c in enumerate(inst.cap))
        self.wide = _Instance([], wide_cap)
        self.wide_enc = [self.wide.encode(v) for v in inst.items]
        self.pool_limit = self.wide.encode(inst.cap) | self.wide.guard
        # A zero-sized item would never be worth moving: give everything a floor.
        self.size = [max(math.fsum(v), 1e-6) for v in inst.norm]
        self.rng = rng
        self.clock = clock
        self.deadline = deadline
        self.iterations_left = max_iterations if max_iterations is not None else -1

    def _out_of_time(self) -> bool:
        return self.iterations_left == 0 or self.clock() >= self.deadline

    def improve(self, bins: Bins, lb: int) -> Bins:
        """Fewer bins if found in time; never more."""
        best = [list(b) for b in bins]
        while len(best) > max(lb, 1) and not self._out_of_time():
            fewer = self._drop_one(best)
            if fewer is None:
                break
            best = fewer
        return best

    def _drop_one(self, bins: Bins) -> Bins | None:
        size, enc, guard = self.size, self.inst.enc, self.inst.guard
        load = [math.fsum(size[i] for i in b) for b in bins]
        emptied = set(sorted(range(len(bins)), key=lambda k: (load[k], len(bins[k])))[:2])
        pool = [i for k in sorted(emptied) for i in bins[k]]
        work = [list(b) for k, b in enumerate(bins) if k not in emptied]
        load = [x for k, x in enumerate(load) if k not in emptied]
        res = [self.inst.empty - sum(enc[i] for i in b) for b in work]
        val = list(size)  # weight x size, weights starting at 1
        outs: dict[int, list[_Swap]] = {}

        def insert(candidates: list[int], into_bins: Sequence[int]) -> None:
            # Biggest first, each into the fullest of `into_bins` that takes it.
            for p in sorted(candidates, key=lambda i: -size[i]):
                s = enc[p]
                target = -1
                for k in into_bins:
                    if (res[k] - s) & guard == guard and (target < 0 or load[k] > load[target]):
                        target = k
                if target >= 0:
                    pool.remove(p)
                    work[target].append(p)
                    res[target] -= s
                    load[target] += size[p]
                    outs.pop(target, None)

        insert(list(pool), range(len(work)))
        wide_guard = self.wide.guard
        while True:
            if (self.pool_limit - sum(self.wide_enc[i] for i in pool)) & wide_guard == wide_guard:
                return work + ([pool] if pool else [])
            if not work or self._out_of_time():
                return None
            self.iterations_left -= 1
            move = self._first_swap(work, res, pool, val, outs, self.rng.randrange(len(work)))
            if move is None:
                for p in pool:
                    val[p] *= _STUCK_GROWTH
                continue
            k, out, into = move
            for q in out:
                work[k].remove(q)
                pool.append(q)
            for p in into:
                pool.remove(p)
                work[k].append(p)
            res[k] += sum(enc[q] for q in out) - sum(enc[p] for p in into)
            load[k] += sum(size[p] for p in into) - sum(size[q] for q in out)
            outs.pop(k, None)
            # Only the items just ejected and the bin just changed can open new insertions.
            insert(list(out), range(len(work)))
            insert(list(pool), (k,))

    def _first_swap(
        self,
        work: Bins,
        res: list[int],
        pool: list[int],
        val: list[float],
        outs: dict[int, list[_Swap]],
        start: int,
    ) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
        """The first swap, scanning bins from `start`, that lowers the pool's weighted size,
        as (bin, its items going out, pool items going in)."""
        enc, guard = self.inst.enc, self.inst.guard
        ins: list[_Swap] = [(val[p], enc[p], (p,)) for p in pool]
        heavy = sorted(pool, key=lambda p: -val[p])[:_PAIR_POOL]
        ins += [
            (val[p] + val[q], enc[p] + enc[q], (p, q))
            for a, p in enumerate(heavy)
            for q in heavy[a + 1 :]
        ]
        ins.sort(key=lambda t: -t[0])
        top = ins[0][0] if ins else 0.0
        n = len(work)
        for k in (*range(start, n), *range(start)):
            cands = outs.get(k)
            if cands is None:
                b = work[k]
                cands = [(val[q], enc[q], (q,)) for q in b]
                cands += [
                    (val[q1] + val[q2], enc[q1] + enc[q2], (q1, q2))
                    for a, q1 in enumerate(b)
                    for q2 in b[a + 1 :]
                ]
                cands.sort(key=lambda t: t[0])
                outs[k] = cands
            r = res[k]
            for v_out, e_out, out in cands:
                if v_out >= top:
                    break
                room = r + e_out
                for v_in, e_in, into in ins:
                    if v_in <= v_out:
                        break
                    if (room - e_in) & guard == guard:
                        return k, out, into
        return None


class ConsolidationPlanner:
    """Packs items into as few bins as it can within a time budget.

    Runs cheap offline heuristics (stopping early at the lower bound), keeps the best packing,
    then repeatedly tries to empty bins with a local search (`_EmptyBinSearch`) until the
    budget runs out or the lower bound is reached. Never returns more bins than the best
    heuristic it ran (FFD-L2 always runs first).
    Sizes must be non-negative integers (exact arithmetic): scale fractional vCPUs first.
    """

    def __init__(
        self,
        time_budget_s: float = 0.8,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.perf_counter,
        heuristics: Sequence[str] = ("ffd-l2", "ffd-avg-l2", "ffd-linf", "bfd-l2"),
        max_iterations: int | None = None,
    ) -> None:
        unknown = [h for h in heuristics if h not in _HEURISTICS]
        if unknown:
            raise ValueError(f"unknown heuristics {unknown!r}")
        self.time_budget_s = time_budget_s
        self.seed = seed
        self.clock = clock
        self.heuristics = ("ffd-l2", *(h for h in heuristics if h != "ffd-l2"))
        self.max_iterations = max_iterations

    def plan(self, items: Sequence[Vector], capacity: Vector) -> Bins:
        """A packing of `items` (indices per bin) into bins of `capacity`."""
        deadline = self.clock() + self.time_budget_s
        inst = _Instance(items, capacity)
        if not inst.items:
            return []
        lb = inst.lower_bound()
        best: Bins | None = None
        for name in self.heuristics:
            bins = _HEURISTICS[name](inst)
            if best is None or len(bins) < len(best):
                best = bins
            if len(best) <= lb or self.clock() >= deadline:
                break
        assert best is not None
        if len(best) <= lb:
            return best
        rng = random.Random(self.seed)
        return _EmptyBinSearch(inst, rng, self.clock, deadline, self.max_iterations).improve(
            best, lb
        )
