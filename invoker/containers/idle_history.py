"""Idle-time histories: one function's histogram of idle times and calls (`IdleHistory`),
and `HistoryPolicy`, the base of the keep-alive policies that keep one per function and
decide from it (see `history_policies.py`). Pure: every time is passed in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from invoker.containers.keepalive_model import FunctionKey, KeepAliveDecision


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
        b = int(idle_s // self.bin_s)  # bin_of, inline: once per call
        self.recent.append(idle_s)
        if b >= self.n_bins:
            self.out_of_bounds.append(idle_s)
            self.oob_total += 1
            return
        count = self.counts[b]
        self.sum_sq += 2 * count + 1
        self.counts[b] = count + 1
        self.in_bounds += 1
        if b > self.max_bin:
            self.max_bin = b

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


MAX_DECISIONS = 1024
"""Distinct decisions a policy keeps made; past it they are made afresh."""


class HistoryPolicy:
    """Keeps one `IdleHistory` per function; subclasses choose from it in `_choose`."""

    name = "history"

    def __init__(self, bin_s: float, range_s: float) -> None:
        if bin_s <= 0 or range_s < bin_s:
            raise ValueError("need bin_s > 0 and range_s >= bin_s")
        self.bin_s = bin_s
        self.n_bins = round(range_s / bin_s)
        self._histories: dict[FunctionKey, IdleHistory] = {}
        # Decisions are values and a function's repeat call after call: each is made once.
        self._decisions: dict[tuple[float, float | None, str], KeepAliveDecision] = {}

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

    def _decision(
        self, keep_alive_s: float, prewarm_after_s: float | None, reason: str
    ) -> KeepAliveDecision:
        """`KeepAliveDecision(keep_alive_s, prewarm_after_s, reason)`, the one made before
        when there is one (it is immutable): no new one, checked again, after every call."""
        key = (keep_alive_s, prewarm_after_s, reason)
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.clear()
            decision = self._decisions[key] = KeepAliveDecision(*key)
        return decision

    def _window(
        self, start_s: float, end_s: float, reason: str, min_unload_s: float
    ) -> KeepAliveDecision:
        """Warm over [start_s, end_s); unloading for less than `min_unload_s` is not worth it."""
        end_s = max(0.0, end_s)
        if start_s <= 0 or start_s < min_unload_s or start_s >= end_s:
            return self._decision(end_s, None, reason)
        return self._decision(end_s, start_s, reason)
