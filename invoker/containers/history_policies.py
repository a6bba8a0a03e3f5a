"""Keep-alive policies that decide from each function's idle-time histogram.

- `HybridHistogram`: Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020): pre-warm
  at the histogram's head and keep alive to its tail.
- `ColdStartBudget`: ours, the cheapest window that keeps a function's cold starts within a
  budget (see `keepalive.py` for the overview). Pure: every time is passed in.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate
from operator import mul

from invoker.containers.idle_history import HistoryPolicy, IdleHistory
from invoker.containers.keepalive_model import HOUR_S, KeepAliveDecision

SHORT_WALK = 16
"""A histogram reaching fewer bins than this past the window's start is walked from it."""

# --- the paper's hybrid histogram -------------------------------------------------------


class HybridHistogram(HistoryPolicy):
    """Shahrad et al. (ATC 2020), hybrid histogram policy.

    With at least `min_samples` idle times in range and a representative histogram
    (coefficient of variation of bin counts >= `cv_threshold`): pre-warm at the head
    (5th percentile, bin's lower edge) minus `margin`, keep alive to the tail (99th
    percentile, bin's upper edge) plus `margin`. When most idle times are longer than the
    histogram, the paper forecasts the next one with ARIMA; this approximation forecasts
    the median of the recent out-of-bounds idle times, with `oob_margin` either side.
    Otherwise: keep alive for `fallback_s` (the histogram range, 4 hours).
    """

    name = "hybrid"

    def __init__(
        self,
        bin_s: float = 60.0,
        range_s: float = 4 * HOUR_S,
        min_samples: int = 10,
        cv_threshold: float = 2.0,
        head_percentile: float = 5.0,
        tail_percentile: float = 99.0,
        margin: float = 0.1,
        oob_fraction: float = 0.5,
        oob_margin: float = 0.15,
        fallback_s: float | None = None,
    ) -> None:
        super().__init__(bin_s, range_s)
        self.min_samples = min_samples
        self.cv_threshold = cv_threshold
        self.head_percentile = head_percentile
        self.tail_percentile = tail_percentile
        self.margin = margin
        self.oob_fraction = oob_fraction
        self.oob_margin = oob_margin
        self.fallback_s = range_s if fallback_s is None else fallback_s

    def _choose(self, h: IdleHistory) -> KeepAliveDecision:
        if h.samples >= self.min_samples and h.oob_total > self.oob_fraction * h.samples:
            recent = sorted(h.out_of_bounds)
            forecast = recent[len(recent) // 2]
            return self._window(
                forecast * (1 - self.oob_margin), forecast * (1 + self.oob_margin), "forecast", 0.0
            )
        if h.in_bounds >= self.min_samples and (h.coefficient_of_variation() >= self.cv_threshold):
            head_s = h.percentile_bin(self.head_percentile) * self.bin_s
            tail_s = (h.percentile_bin(self.tail_percentile) + 1) * self.bin_s
            return self._window(
                head_s * (1 - self.margin), tail_s * (1 + self.margin), "histogram", 0.0
            )
        return self._decision(self.fallback_s, None, "fallback")


# --- ours: a cold-start budget per function ---------------------------------------------


class ColdStartBudget(HistoryPolicy):
    """Keep each function's cold starts within a budget, spending as little memory as it can.

    The budget is `target_cold_fraction` of the function's calls (12% by default: the
    setting the trace replay in bench/keepalive.py supports, see docs/performance.md).
    From its history the policy knows the calls so far, how many were cold (as its own
    decisions predict) and the calls per busy period (`burst`: one cold start costs a
    function that is called in bursts little).

    - Learning (fewer than `min_samples` idle times): if one more cold start keeps the
      function within budget, a short TTL (`short_ttl_s`). Otherwise, if the last
      `periodic_samples` idle times agree (within `periodic_tolerance`, or one bin), unload
      now and pre-warm just in time; else hold it generously (`learning_ttl_s`, or
      1 + margin times the longest idle time seen, up to the histogram range), which is
      what lets rarely called functions become warm at all.
    - Trusted: the hit rate that keeps the function within budget over as many future idle
      periods as it has seen (spending any slack it has built up); then, among the windows
      on the histogram reaching it (pre-warm at 0 or at the 5th percentile, keep-alive end
      at a bin's upper edge, or no window when none is needed), the one that minimises
      idle time held plus `cold_start_value_s` per cold start; with margin either side.
      So periodic functions are pre-warmed just in time whenever that is cheap, even
      within budget. A short TTL when that window holds more than `max_idle_per_hit_s`
      of idle time per warm call.
    """

    name = "budget"

    def __init__(
        self,
        target_cold_fraction: float = 0.12,
        bin_s: float = 60.0,
        range_s: float = 4 * HOUR_S,
        min_samples: int = 10,
        short_ttl_s: float = 600.0,
        learning_ttl_s: float = 2 * HOUR_S,
        max_idle_per_hit_s: float = HOUR_S,
        periodic_samples: int = 3,
        periodic_tolerance: float = 0.1,
        margin: float = 0.1,
        head_percentile: float = 5.0,
        min_unload_s: float = 60.0,
        cold_start_value_s: float = 60.0,
    ) -> None:
        super().__init__(bin_s, range_s)
        if not 0 < target_cold_fraction < 1:
            raise ValueError("target_cold_fraction must lie in (0, 1)")
        self.target = target_cold_fraction
        self.min_samples = min_samples
        self.short_ttl_s = short_ttl_s
        self.learning_ttl_s = learning_ttl_s
        self.max_idle_per_hit_s = max_idle_per_hit_s
        self.periodic_samples = periodic_samples
        self.periodic_tolerance = periodic_tolerance
        self.margin = margin
        self.head_percentile = head_percentile
        self.min_unload_s = min_unload_s
        self.cold_start_value_s = cold_start_value_s

    def _choose(self, h: IdleHistory) -> KeepAliveDecision:
        # Runs each time a container goes idle, i.e. after every call: kept lean.
        gaps = h.in_bounds + h.oob_total
        burst = h.calls / (gaps + 1)

        if gaps < self.min_samples:
            range_s = h.range_s
            if h.colds + 1 <= self.target * (h.calls + burst):  # within budget
                return self._decision(self.short_ttl_s, None, "learning, within budget")
            period = self._period(h)
            if period is not None:
                lo, hi = period
                start = h.bin_of(lo) * self.bin_s * (1 - self.margin)
                end = (h.bin_of(hi) + 1) * self.bin_s * (1 + self.margin)
                return self._window(start, end, "periodic", self.min_unload_s)
            keep = self.learning_ttl_s
            if h.max_bin >= 0:
                longest = (h.max_bin + 1) * self.bin_s * (1 + self.margin)
                keep = min(range_s, max(keep, longest))
            return self._decision(keep, None, "learning")

        slack = self.target * h.calls - h.colds
        need = min(0.99, 1 - self.target * burst - slack / gaps)
        window = self._best_window(h, need)
        if window is None or window[2] > self.max_idle_per_hit_s:
            return self._decision(self.short_ttl_s, None, "no affordable window")
        start, end, _ = window
        if end == 0:
            return self._decision(0.0, None, "within budget")
        return self._window(
            start * (1 - self.margin), end * (1 + self.margin), "histogram", self.min_unload_s
        )

    def _period(self, h: IdleHistory) -> tuple[float, float] | None:
        """(shortest, longest) of the last idle times when they agree; None otherwise."""
        k = self.periodic_samples
        if k <= 0 or len(h.recent) < k:
            return None
        last = list(h.recent)[-k:]
        lo, hi = min(last), max(last)
        if hi >= h.range_s or lo < self.min_unload_s:
            return None
        if hi - lo <= max(self.bin_s, self.periodic_tolerance * hi):
            return lo, hi
        return None

    def _best_window(self, h: IdleHistory, need: float) -> tuple[float, float, float] | None:
        """(start_s, end_s, idle seconds held per warm call) of the window, warm for at least
        `need` of the idle times seen, that minimises idle time held plus
        `cold_start_value_s` per cold start; end_s = 0 is no window. Each bin's idle times
        count at its lower edge; pre-warm starts at 0 or at the head percentile.

        Runs after every call, so a long histogram is not walked bin by bin in Python: the
        bins below the first end warming enough are summed in C (`accumulate`, `bisect`),
        and the walk stops once no later end can cost less. It chooses what the plain walk
        over every bin chose (tests/unit/test_keepalive_window.py holds that walk).
        """
        total = h.in_bounds + h.oob_total
        value_s, bin_s, counts = self.cold_start_value_s, self.bin_s, h.counts
        best: tuple[float, float, float] | None = None
        best_cost = math.inf
        if need <= 0:
            best, best_cost = (0.0, 0.0, 0.0), value_s * total
        if h.in_bounds == 0:
            return best
        head = h.percentile_bin(self.head_percentile)
        enough = need * total
        # Held time only grows with the end, and the out-of-bounds idle times are cold
        # whatever the window: once an end's held time plus their cost reaches the best
        # so far, no later end costs less. Sound only when a cold start has no negative value.
        floor_s = value_s * h.oob_total if value_s >= 0 else -math.inf
        for p in (0, head) if head > 0 else (0,):
            hits = held_below = 0  # held_below: bins x samples held for idle periods
            start = p  # that ended inside the window
            if h.max_bin - p >= SHORT_WALK and counts[p] < enough:
                # Skip to the first end warming enough: before it, nothing is a candidate.
                hits_to = list(accumulate(counts[p : h.max_bin + 1]))
                first = bisect_left(hits_to, enough)
                if first == len(hits_to):
                    continue
                if first:
                    start, hits = p + first, hits_to[first - 1]
                    held_below = sum(map(mul, counts[p:start], range(first)))
            # Bins below the head are summed (few); all of them is in_bounds.
            above = (h.in_bounds - sum(counts[:p]) if p else h.in_bounds) + h.oob_total - hits
            for b in range(start, h.max_bin + 1):
                count = counts[b]
                if not count:
                    continue
                hits += count
                held_below += count * (b - p)
                above -= count
                if hits < enough:
                    continue
                held_s = (held_below + above * (b + 1 - p)) * bin_s
                cost = held_s + value_s * (total - hits)
                if cost < best_cost:
                    best_cost = cost
                    best = (p * bin_s, (b + 1) * bin_s, held_s / hits)
                elif held_s + floor_s >= best_cost:
                    break
        return best
