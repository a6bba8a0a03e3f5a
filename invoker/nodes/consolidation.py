"""Consolidation planning: `ConsolidationPlanner` packs a pool's containers into as few
nodes as it can within a time budget, running the offline heuristics of `packing.py` and
improving the best with `_EmptyBinSearch`, a local search that empties bins.

Sizes are compared exactly in integers. No I/O; the time budget's clock is injectable.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence

from invoker.nodes.packing import HEURISTICS, Bins, PackingInstance
from invoker.nodes.placement import Vector

_PAIR_POOL = 8
"""Pool items considered for two-for-one swaps: the heaviest few, so big pools stay cheap."""

_Swap = tuple[float, int, tuple[int, ...]]
"""One side of a swap: weighted size, packed size vector, the items."""

_STUCK_GROWTH = 1.05
"""How much heavier pool items get each time no swap helps (tuned on the benchmark set)."""


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
        inst: PackingInstance,
        rng: random.Random,
        clock: Callable[[], float],
        deadline: float,
        max_iterations: int | None,
    ) -> None:
        self.inst = inst
        # The pool may hold far more than a bin, so it is checked with fields wide enough for
        # every item at once.
        wide_cap = tuple(max(c, sum(v[h] for v in inst.items)) for h, c in enumerate(inst.cap))
        self.wide = PackingInstance([], wide_cap)
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
        unknown = [h for h in heuristics if h not in HEURISTICS]
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
        inst = PackingInstance(items, capacity)
        if not inst.items:
            return []
        lb = inst.lower_bound()
        best: Bins | None = None
        for name in self.heuristics:
            bins = HEURISTICS[name](inst)
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
