"""Keep-alive policies: how long an idle container stays warm, and when to pre-warm one.

Pure decision logic: no I/O, every time is passed in (`now`, monotonic seconds). The
invoker calls `observe(key, now)` when a call of a function arrives and
`decide(key, now)` when that function's container goes idle (its last call ended); the
answer is a `KeepAliveDecision` measured from that moment.

Policies:
- `FixedTTL`: the same keep-alive for everyone (OpenWhisk keeps 10 minutes).
- `HybridHistogram`: Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020): a
  per-function histogram of idle times, pre-warm at its head and keep alive to its tail.
- `ColdStartBudget`: ours. Each function gets a cold-start budget (a fraction of its
  calls). The histogram picks the cheapest window that keeps the function within
  budget (pre-warming periodic functions just in time); while it is still learning, a
  short TTL if the function is within budget, a generous hold only if it is not.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

FunctionKey = Hashable
"""Whatever the invoker uses to tell functions apart, e.g. `FunctionSpec.key`."""

HOUR_S = 3600.0


@dataclass(frozen=True)
class KeepAliveDecision:
    """What to do with a function's container from the moment it goes idle.

    Times are seconds after that moment. `prewarm_after_s=None`: keep the container
    warm until `keep_alive_s`, then remove it. Otherwise remove it now, start a fresh one
    at `prewarm_after_s` and keep that one until `keep_alive_s`. `keep_alive_s=0`: remove
    it now. `keep_alive_s` may be `math.inf` (never expire).
    """

    keep_alive_s: float
    prewarm_after_s: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if math.isnan(self.keep_alive_s) or self.keep_alive_s < 0:
            raise ValueError(f"keep_alive_s must be >= 0, got {self.keep_alive_s}")
        if self.prewarm_after_s is not None and not (0 < self.prewarm_after_s < self.keep_alive_s):
            raise ValueError(
                f"prewarm_after_s must lie in (0, keep_alive_s={self.keep_alive_s}),"
                f" got {self.prewarm_after_s}"
            )

    @property
    def warm_from_s(self) -> float:
        """When, after going idle, a warm container is (again) available."""
        return self.prewarm_after_s if self.prewarm_after_s is not None else 0.0

    def warm_at(self, idle_s: float) -> bool:
        """Whether a call arriving `idle_s` after the container went idle finds it warm."""
        return self.warm_from_s <= idle_s < self.keep_alive_s


class KeepAlivePolicy(Protocol):
    """Decides, per function, from its history and `now`, how long idle containers live."""

    name: str

    def observe(self, key: FunctionKey, now: float, calls: int = 1) -> None:
        """`calls` calls of the function arrived at `now`."""
        ...

    def decide(self, key: FunctionKey, now: float) -> KeepAliveDecision:
        """The function's container went idle at `now`: how long to keep it, when to pre-warm."""
        ...

    def forget(self, key: FunctionKey) -> None:
        """Drop what is known about a function (deleted, or not called for a long time)."""
        ...

    def export_state(self, key: FunctionKey) -> dict[str, Any] | None:
        """A small JSON-able snapshot of the function's history, or None if there is none."""
        ...

    def restore_state(self, key: FunctionKey, state: Mapping[str, Any]) -> None:
        """Load a snapshot made by `export_state` (of a policy with the same bin settings)."""
        ...


# --- fixed TTL ------------------------------------------------------------------------


class FixedTTL:
    """Keep every idle container for the same time; no history, no pre-warming."""

    name = "fixed"

    def __init__(self, ttl_s: float = 600.0) -> None:
        if math.isnan(ttl_s) or ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        self.ttl_s = ttl_s

    def observe(self, key: FunctionKey, now: float, calls: int = 1) -> None:
        """Fixed TTL learns nothing."""

    def decide(self, key: FunctionKey, now: float) -> KeepAliveDecision:
        """Always the configured TTL."""
        return KeepAliveDecision(self.ttl_s, None, "fixed")

    def forget(self, key: FunctionKey) -> None:
        """Nothing is kept per function."""

    def export_state(self, key: FunctionKey) -> dict[str, Any] | None:
        """Nothing to export."""
        return None

    def restore_state(self, key: FunctionKey, state: Mapping[str, Any]) -> None:
        """Nothing to restore."""


# --- idle-time history shared by the histogram policies ---------------------------------


@dataclass
class IdleHistory:
    """One function's idle times (a histogram of `n_bins` bins of `bin_s` seconds) and calls.

    Idle times beyond the histogram's range are counted as out-of-bounds and the most
    recent of them kept. `colds` counts the calls that found no warm container, as the
    policy's own decisions predict (the first call ever is cold).
    """

    bin_s: float = 60.0
    n_bins: int = 240
    counts: list[int] = field(default_factory=list)
    in_bounds: int = 0
    sum_sq: int = 0  # sum of squared bin counts, so the CV costs O(1)
    max_bin: int = -1
    out_of_bounds: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    oob_total: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    calls: int = 0
    colds: int = 0
    idle_since: float | None = None
    last_decision: KeepAliveDecision | None = None

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * self.n_bins
        if len(self.counts) != self.n_bins:
            raise ValueError(f"expected {self.n_bins} bins, got {len(self.counts)}")

    @property
    def range_s(self) -> float:
        """Longest idle time the histogram holds."""
        return self.bin_s * self.n_bins

    @property
    def samples(self) -> int:
        """Idle times seen, in bounds or not."""
        return self.in_bounds + self.oob_total

    def bin_of(self, idle_s: float) -> int:
        """Index of the bin an idle time falls in (may be >= n_bins: out of bounds)."""
        return int(idle_s // self.bin_s)

    def record_idle(self, idle_s: float) -> None:
        """Add one idle time."""
        b = self.bin_of(idle_s)
        self.recent.append(idle_s)
        if b >= self.n_bins:
            self.out_of_bounds.append(idle_s)
            self.oob_total += 1
            return
        self.sum_sq += 2 * self.counts[b] + 1
        self.counts[b] += 1
        self.in_bounds += 1
        self.max_bin = max(self.max_bin, b)

    def observe(self, now: float, calls: int) -> None:
        """Calls arrived: close the idle period, if any, and count whether it ended cold."""
        if calls <= 0:
            return
        if self.idle_since is not None:
            idle_s = max(0.0, now - self.idle_since)
            self.record_idle(idle_s)
            decision = self.last_decision
            cold = decision is None or not decision.warm_at(idle_s)
            self.idle_since = None
        else:
            # A call while others are in flight shares their container; the very first is cold.
            cold = self.calls == 0
        self.calls += calls
        self.colds += int(cold)

    def coefficient_of_variation(self) -> float:
        """Standard deviation over mean of the bin counts (all bins); 0 when empty."""
        if self.in_bounds == 0:
            return 0.0
        mean = self.in_bounds / self.n_bins
        variance = max(0.0, self.sum_sq / self.n_bins - mean * mean)
        return math.sqrt(variance) / mean

    def percentile_bin(self, q: float) -> int:
        """The first bin at which the cumulative count reaches q (0..100) percent."""
        if self.in_bounds == 0:
            raise ValueError("empty histogram")
        target = q / 100.0 * self.in_bounds
        acc = 0
        for b, count in enumerate(self.counts):
            acc += count
            if count and acc >= target:
                return b
        return self.max_bin

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot (sparse bins), without the transient open idle period."""
        return {
            "bin_s": self.bin_s,
            "n_bins": self.n_bins,
            "bins": {str(b): c for b, c in enumerate(self.counts) if c},
            "out_of_bounds": list(self.out_of_bounds),
            "oob_total": self.oob_total,
            "recent": list(self.recent),
            "calls": self.calls,
            "colds": self.colds,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], bin_s: float, n_bins: int) -> IdleHistory:
        """Rebuild from `to_dict`; refuses a snapshot taken with other bins."""
        if float(state["bin_s"]) != bin_s or int(state["n_bins"]) != n_bins:
            raise ValueError("snapshot was taken with different histogram bins")
        h = cls(bin_s=bin_s, n_bins=n_bins)
        for b_str, count in dict(state["bins"]).items():
            b, c = int(b_str), int(count)
            if not 0 <= b < n_bins or c < 0:
                raise ValueError(f"bad bin {b_str}: {count}")
            h.counts[b] = c
            h.in_bounds += c
            h.sum_sq += c * c
            if c:
                h.max_bin = max(h.max_bin, b)
        h.out_of_bounds.extend(float(x) for x in state["out_of_bounds"])
        h.oob_total = int(state["oob_total"])
        h.recent.extend(float(x) for x in state["recent"])
        h.calls = int(state["calls"])
        h.colds = int(state["colds"])
        return h


class _HistoryPolicy:
    """Keeps one `IdleHistory` per function; subclasses choose from it in `_choose`."""

    name = "history"

    def __init__(self, bin_s: float, range_s: float) -> None:
        if bin_s <= 0 or range_s < bin_s:
            raise ValueError("need bin_s > 0 and range_s >= bin_s")
        self.bin_s = bin_s
        self.n_bins = round(range_s / bin_s)
        self._histories: dict[FunctionKey, IdleHistory] = {}

    def history(self, key: FunctionKey) -> IdleHistory:
        """The function's history (created empty on first use)."""
        h = self._histories.get(key)
        if h is None:
            h = IdleHistory(bin_s=self.bin_s, n_bins=self.n_bins)
            self._histories[key] = h
        return h

    def observe(self, key: FunctionKey, now: float, calls: int = 1) -> None:
        """`calls` calls of the function arrived at `now`."""
        self.history(key).observe(now, calls)

    def decide(self, key: FunctionKey, now: float) -> KeepAliveDecision:
        """The function's container went idle at `now`: choose from its history."""
        h = self.history(key)
        h.idle_since = now
        decision = self._choose(h)
        h.last_decision = decision
        return decision

    def forget(self, key: FunctionKey) -> None:
        """Drop the function's history."""
        self._histories.pop(key, None)

    def export_state(self, key: FunctionKey) -> dict[str, Any] | None:
        """Snapshot of the function's history, or None."""
        h = self._histories.get(key)
        return h.to_dict() if h is not None else None

    def restore_state(self, key: FunctionKey, state: Mapping[str, Any]) -> None:
        """Replace the function's history with a snapshot."""
        self._histories[key] = IdleHistory.from_dict(state, self.bin_s, self.n_bins)

    def _choose(self, h: IdleHistory) -> KeepAliveDecision:
        raise NotImplementedError

    def _window(
        self, start_s: float, end_s: float, reason: str, min_unload_s: float
    ) -> KeepAliveDecision:
        """Warm over [start_s, end_s); unloading for less than `min_unload_s` is not worth it."""
        end_s = max(0.0, end_s)
        if start_s <= 0 or start_s < min_unload_s or start_s >= end_s:
            return KeepAliveDecision(end_s, None, reason)
        return KeepAliveDecision(end_s, start_s, reason)


# --- the paper's hybrid histogram -------------------------------------------------------


class HybridHistogram(_HistoryPolicy):
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
        return KeepAliveDecision(self.fallback_s, None, "fallback")


# --- ours: a cold-start budget per function ---------------------------------------------


class ColdStartBudget(_HistoryPolicy):
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
        range_s = h.range_s
        gaps = h.samples
        burst = h.calls / (gaps + 1)
        within_budget = h.colds + 1 <= self.target * (h.calls + burst)

        if gaps < self.min_samples:
            if within_budget:
                return KeepAliveDecision(self.short_ttl_s, None, "learning, within budget")
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
            return KeepAliveDecision(keep, None, "learning")

        slack = self.target * h.calls - h.colds
        need = min(0.99, 1 - self.target * burst - slack / gaps)
        window = self._best_window(h, need)
        if window is None or window[2] > self.max_idle_per_hit_s:
            return KeepAliveDecision(self.short_ttl_s, None, "no affordable window")
        start, end, _ = window
        if end == 0:
            return KeepAliveDecision(0.0, None, "within budget")
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
        count at its lower edge; pre-warm starts at 0 or at the head percentile."""
        total = h.samples
        best: tuple[float, float, float] | None = None
        best_cost = math.inf
        if need <= 0:
            best, best_cost = (0.0, 0.0, 0.0), self.cold_start_value_s * total
        if h.in_bounds == 0:
            return best
        starts = [0]
        head = h.percentile_bin(self.head_percentile)
        if head > 0:
            starts.append(head)
        for p in starts:
            hits = 0
            held_below = 0  # bins x samples held for idle periods that ended inside the window
            above = sum(h.counts[p:]) + h.oob_total
            for b in range(p, h.max_bin + 1):
                count = h.counts[b]
                if not count:
                    continue
                hits += count
                held_below += count * (b - p)
                above -= count
                if hits < need * total:
                    continue
                held_s = (held_below + above * (b + 1 - p)) * self.bin_s
                cost = held_s + self.cold_start_value_s * (total - hits)
                if cost < best_cost:
                    best_cost = cost
                    best = (p * self.bin_s, (b + 1) * self.bin_s, held_s / hits)
        return best


PolicyFactory = Callable[..., KeepAlivePolicy]

POLICIES: Mapping[str, PolicyFactory] = {
    FixedTTL.name: FixedTTL,
    HybridHistogram.name: HybridHistogram,
    ColdStartBudget.name: ColdStartBudget,
}


def keep_alive_policy_by_name(name: str, **kwargs: Any) -> KeepAlivePolicy:
    """Build a policy by its config name ("fixed", "hybrid", "budget") with its options."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown keep-alive policy {name!r}; one of {sorted(POLICIES)}") from None
    return factory(**kwargs)
