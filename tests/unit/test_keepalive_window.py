"""The budget policy's window search, cut short, chooses what the plain walk chose.

`ColdStartBudget._best_window` runs after every call; it sums the bins below the first
candidate end in C and stops once no later end can cost less. `_best_window_scan` below is
the plain walk over every bin it replaced: on any histogram and any target, and over whole
call histories, both give the same window and the same decisions, to the last bit.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.containers.history_policies import ColdStartBudget
from invoker.containers.idle_history import IdleHistory


def _best_window_scan(
    policy: ColdStartBudget, h: IdleHistory, need: float
) -> tuple[float, float, float] | None:
    """The window search as it was before: every bin from the start, in Python."""
    total = h.in_bounds + h.oob_total
    value_s, bin_s, counts = policy.cold_start_value_s, policy.bin_s, h.counts
    best: tuple[float, float, float] | None = None
    best_cost = math.inf
    if need <= 0:
        best, best_cost = (0.0, 0.0, 0.0), value_s * total
    if h.in_bounds == 0:
        return best
    head = h.percentile_bin(policy.head_percentile)
    enough = need * total
    for p in (0, head) if head > 0 else (0,):
        hits = 0
        held_below = 0
        above = (h.in_bounds - sum(counts[:p]) if p else h.in_bounds) + h.oob_total
        for b in range(p, h.max_bin + 1):
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
    return best


class _ScanningBudget(ColdStartBudget):
    """The policy with the plain walk, for whole-history comparisons."""

    def _best_window(self, h: IdleHistory, need: float) -> tuple[float, float, float] | None:
        return _best_window_scan(self, h, need)


N_BINS = 24
idle_times = st.one_of(
    st.floats(0, 90.0),  # most gaps short
    st.floats(0, N_BINS * 60.0 * 1.5),  # some past the histogram
    st.sampled_from([0.0, 59.999, 60.0, 600.0, 1439.0]),
)


def _history(idles: list[float], oob: int) -> IdleHistory:
    h = IdleHistory(bin_s=60.0, n_bins=N_BINS)
    for idle in idles:
        h.record_idle(idle)
    h.oob_total += oob
    return h


@settings(max_examples=600, deadline=None)
@given(
    idles=st.lists(idle_times, max_size=80),
    oob=st.integers(0, 20),
    need=st.one_of(st.floats(-2.0, 0.99), st.sampled_from([-0.5, 0.0, 0.5, 0.88, 0.99])),
    value_s=st.one_of(st.floats(0.0, 5000.0), st.sampled_from([0.0, 60.0, -30.0])),
    head=st.sampled_from([0.0, 5.0, 25.0, 50.0]),
)
def test_the_window_is_the_plain_walks_on_any_histogram(
    idles: list[float], oob: int, need: float, value_s: float, head: float
) -> None:
    policy = ColdStartBudget(
        bin_s=60.0, range_s=N_BINS * 60.0, cold_start_value_s=value_s, head_percentile=head
    )
    h = _history(idles, oob)
    assert policy._best_window(h, need) == _best_window_scan(policy, h, need)


@settings(max_examples=150, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 4 * 3600.0 * 1.2), min_size=1, max_size=120),
    value_s=st.sampled_from([0.0, 60.0, 600.0]),
    target=st.sampled_from([0.05, 0.12, 0.5]),
)
def test_decisions_over_a_call_history_are_the_plain_walks(
    gaps: list[float], value_s: float, target: float
) -> None:
    fast = ColdStartBudget(target_cold_fraction=target, cold_start_value_s=value_s)
    plain = _ScanningBudget(target_cold_fraction=target, cold_start_value_s=value_s)
    key, now = ("t", "f"), 1000.0
    for gap in gaps:
        now += gap
        fast.observe(key, now)
        plain.observe(key, now)
        assert fast.decide(key, now + 0.01) == plain.decide(key, now + 0.01)


def test_a_long_tailed_hot_function_still_gets_its_window() -> None:
    """A function called every few seconds after quiet nights: the window is the short one
    the plain walk finds, though the histogram reaches its last bin."""
    policy = ColdStartBudget()
    h = IdleHistory(bin_s=policy.bin_s, n_bins=policy.n_bins)
    for b in range(policy.n_bins):
        h.record_idle(b * policy.bin_s + 1.0)
    for _ in range(5000):
        h.record_idle(2.0)
    h.calls, h.colds = 5300, 300
    for need in (0.5, 0.9, 0.99):
        assert policy._best_window(h, need) == _best_window_scan(policy, h, need)
    assert policy._best_window(h, 0.9) == (0.0, 60.0, _best_window_scan(policy, h, 0.9)[2])  # type: ignore[index]
