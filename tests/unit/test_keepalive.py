"""Keep-alive policies, driven directly with made-up call histories (no Docker, no clock)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.containers.history_policies import ColdStartBudget, HybridHistogram
from invoker.containers.idle_history import IdleHistory
from invoker.containers.keepalive import FixedTTL, keep_alive_policy_by_name
from invoker.containers.keepalive_model import KeepAliveDecision, KeepAlivePolicy

MIN = 60.0
HOUR = 3600.0
KEY = ("acme", "resize", 1)


def feed(
    policy: KeepAlivePolicy,
    idle_times: Sequence[float],
    calls: int | Sequence[int] = 1,
    busy_s: float = 2.0,
    key: object = KEY,
) -> KeepAliveDecision:
    """Play a history: a first call, then one call burst after each idle time.

    Each burst keeps the container busy `busy_s` and then it goes idle. Returns the
    decision taken when the container went idle after the last burst.
    """
    bursts = [calls] * (len(idle_times) + 1) if isinstance(calls, int) else list(calls)
    assert len(bursts) == len(idle_times) + 1
    now = 1000.0
    policy.observe(key, now, bursts[0])
    decision = policy.decide(key, now + busy_s)
    now += busy_s
    for idle, n in zip(idle_times, bursts[1:], strict=True):
        now += idle
        policy.observe(key, now, n)
        now += busy_s
        decision = policy.decide(key, now)
    return decision


# --- the decision value -------------------------------------------------------------------


def test_decision_rejects_impossible_windows() -> None:
    with pytest.raises(ValueError):
        KeepAliveDecision(-1.0)
    with pytest.raises(ValueError):
        KeepAliveDecision(60.0, prewarm_after_s=60.0)
    with pytest.raises(ValueError):
        KeepAliveDecision(60.0, prewarm_after_s=0.0)


def test_decision_warm_window() -> None:
    keep = KeepAliveDecision(600.0)
    assert keep.warm_at(0.0) and keep.warm_at(599.0)
    assert not keep.warm_at(600.0)
    prewarm = KeepAliveDecision(1000.0, prewarm_after_s=400.0)
    assert not prewarm.warm_at(399.0)
    assert prewarm.warm_at(400.0) and prewarm.warm_at(999.0)
    assert not prewarm.warm_at(1000.0)
    assert not KeepAliveDecision(0.0).warm_at(0.0)


# --- fixed TTL ----------------------------------------------------------------------------


def test_fixed_ttl_defaults_to_ten_minutes_whatever_the_history() -> None:
    policy = FixedTTL()
    first = policy.decide(KEY, 0.0)
    assert first == KeepAliveDecision(600.0, None, "fixed")
    later = feed(policy, [5.0, 3000.0, 30 * MIN])
    assert later.keep_alive_s == 600.0 and later.prewarm_after_s is None


def test_fixed_ttl_zero_and_forever() -> None:
    assert not FixedTTL(0.0).decide(KEY, 0.0).warm_at(0.0)
    assert FixedTTL(math.inf).decide(KEY, 0.0).warm_at(1e9)
    with pytest.raises(ValueError):
        FixedTTL(-5.0)


# --- histogram arithmetic -----------------------------------------------------------------


def hand_made_histogram() -> IdleHistory:
    """100 idle times: 5 of 2 min, 90 of 10 min, 5 of 50 min (plus seconds inside the bin)."""
    h = IdleHistory()
    for minutes, count in ((2, 5), (10, 90), (50, 5)):
        for i in range(count):
            h.record_idle(minutes * MIN + i % 60)
    return h


def test_percentiles_and_cv_on_a_hand_made_histogram() -> None:
    h = hand_made_histogram()
    assert h.in_bounds == 100
    assert h.percentile_bin(5) == 2  # 5 of 100 reached in the 2-minute bin
    assert h.percentile_bin(6) == 10
    assert h.percentile_bin(95) == 10
    assert h.percentile_bin(99) == 50
    counts = [0] * 240
    counts[2], counts[10], counts[50] = 5, 90, 5
    expected_cv = statistics.pstdev(counts) / statistics.mean(counts)
    assert h.coefficient_of_variation() == pytest.approx(expected_cv)


def test_hybrid_margins_on_the_hand_made_histogram() -> None:
    policy = HybridHistogram()
    policy.restore_state(KEY, hand_made_histogram().to_dict())
    d = policy.decide(KEY, 0.0)
    assert d.reason == "histogram"
    # head: lower edge of the 5th-percentile bin, minus 10%
    assert d.prewarm_after_s == pytest.approx(2 * MIN * 0.9)
    # tail: upper edge of the 99th-percentile bin, plus 10%
    assert d.keep_alive_s == pytest.approx(51 * MIN * 1.1)


# --- the paper's hybrid -------------------------------------------------------------------


def test_hybrid_falls_back_to_four_hours_while_learning() -> None:
    assert HybridHistogram().decide(KEY, 0.0) == KeepAliveDecision(4 * HOUR, None, "fallback")
    d = feed(HybridHistogram(), [30 * MIN] * 9)  # 9 idle times: one short of min_samples
    assert d.keep_alive_s == 4 * HOUR and d.prewarm_after_s is None


def test_hybrid_falls_back_when_the_histogram_is_flat() -> None:
    # One idle time in each of 60 bins: CV = sqrt(240/60 - 1) ~ 1.73 < 2.
    d = feed(HybridHistogram(), [m * MIN + 1 for m in range(60)])
    assert d.reason == "fallback"
    assert d.keep_alive_s == 4 * HOUR


def test_hybrid_prewarms_a_periodic_function_just_in_time() -> None:
    d = feed(HybridHistogram(), [30 * MIN] * 20)
    assert d.reason == "histogram"
    assert d.prewarm_after_s == pytest.approx(27 * MIN)
    # Keep-alive to the 30-31 min bin's upper edge plus 10%: 34.1 min.
    assert d.keep_alive_s == pytest.approx(31 * MIN * 1.1)
    assert d.warm_at(30 * MIN) and not d.warm_at(26 * MIN) and not d.warm_at(35 * MIN)


def test_hybrid_keeps_loaded_when_the_head_is_zero() -> None:
    d = feed(HybridHistogram(), [10.0] * 15 + [5 * MIN])
    assert d.prewarm_after_s is None
    assert d.keep_alive_s == pytest.approx(6 * MIN * 1.1)


def test_hybrid_forecasts_when_most_idle_times_are_beyond_the_histogram() -> None:
    d = feed(HybridHistogram(), [5 * HOUR, 6 * HOUR, 5.5 * HOUR] * 4)
    assert d.reason == "forecast"
    assert d.prewarm_after_s is not None
    assert d.prewarm_after_s < 5.5 * HOUR < d.keep_alive_s


# --- ours: cold-start budget --------------------------------------------------------------


def test_budget_bursty_function_gets_a_short_ttl_while_learning() -> None:
    policy = ColdStartBudget()
    # 20 calls in the first burst, one of them cold: another cold burst stays within 12%.
    policy.observe(KEY, 0.0, 20)
    d = policy.decide(KEY, 1.0)
    assert d.keep_alive_s == 600.0 and d.reason == "learning, within budget"


def test_budget_rare_function_is_held_generously_while_learning() -> None:
    policy = ColdStartBudget()
    policy.observe(KEY, 0.0, 1)
    first = policy.decide(KEY, 1.0)  # one call, cold: over budget
    assert first.keep_alive_s == 2 * HOUR and first.prewarm_after_s is None
    # After a 3-hour idle time it holds 1.1 x that (bin's upper edge), within the 4 h range.
    d = feed(ColdStartBudget(), [3 * HOUR, 20 * MIN])
    assert d.reason == "learning"
    assert d.keep_alive_s == pytest.approx((180 + 1) * MIN * 1.1)
    d = feed(ColdStartBudget(), [3.9 * HOUR, 20 * MIN])
    assert d.keep_alive_s == 4 * HOUR


def test_budget_learning_is_shorter_than_the_paper_fallback_for_rare_functions() -> None:
    # Same short history: the paper holds 4 h, we hold 2 h (and 10 min if within budget).
    assert (
        feed(ColdStartBudget(), [40 * MIN]).keep_alive_s
        < feed(HybridHistogram(), [40 * MIN]).keep_alive_s
    )


def test_budget_prewarms_a_periodic_function_before_the_histogram_is_trusted() -> None:
    # A cron-like function, one call every 30 minutes: over budget, so after three
    # matching idle times it is pre-warmed just in time instead of being held.
    d = feed(ColdStartBudget(), [30 * MIN] * 3)
    assert d.reason == "periodic"
    assert d.prewarm_after_s == pytest.approx(27 * MIN)
    assert d.keep_alive_s == pytest.approx(31 * MIN * 1.1)
    two = feed(ColdStartBudget(), [30 * MIN] * 2)
    assert two.reason == "learning"


def test_budget_uses_the_histogram_after_min_samples() -> None:
    d = feed(ColdStartBudget(), [30 * MIN] * 12)
    assert d.reason == "histogram"
    assert d.prewarm_after_s == pytest.approx(27 * MIN)
    assert d.keep_alive_s == pytest.approx(31 * MIN * 1.1)


def test_budget_spends_no_memory_on_a_function_within_budget() -> None:
    # 50 calls per burst: one cold start per burst is 2% of calls, far under 12%, and
    # the idle times are too spread for a cheap window.
    idle = [(10 + 7 * i) * MIN for i in range(12)]
    d = feed(ColdStartBudget(), idle, calls=50)
    assert d == KeepAliveDecision(0.0, None, "within budget")


def test_budget_counts_cold_calls_as_its_decisions_predict() -> None:
    policy = ColdStartBudget()
    feed(policy, [5 * MIN, 3 * HOUR])  # first cold; 5 min warm (held 2 h); 3 h cold
    state = policy.export_state(KEY)
    assert state is not None
    assert state["calls"] == 3
    assert state["colds"] == 2


def test_budget_rejects_a_target_outside_zero_one() -> None:
    with pytest.raises(ValueError):
        ColdStartBudget(target_cold_fraction=1.5)


# --- factory and state --------------------------------------------------------------------


def test_policy_by_name() -> None:
    fixed = keep_alive_policy_by_name("fixed", ttl_s=1200.0)
    assert isinstance(fixed, FixedTTL) and fixed.decide(KEY, 0).keep_alive_s == 1200.0
    assert isinstance(keep_alive_policy_by_name("hybrid"), HybridHistogram)
    budget = keep_alive_policy_by_name("budget", target_cold_fraction=0.2)
    assert isinstance(budget, ColdStartBudget) and budget.target == 0.2
    with pytest.raises(ValueError, match="unknown keep-alive policy"):
        keep_alive_policy_by_name("lru")


@pytest.mark.parametrize("name", ["hybrid", "budget"])
def test_state_round_trips_through_json(name: str) -> None:
    idle = [3 * MIN, 40.0, 3 * MIN, 5 * HOUR, 3 * MIN, 10.0] * 3
    original = keep_alive_policy_by_name(name)
    feed(original, idle)
    state = original.export_state(KEY)
    assert state is not None
    restored = keep_alive_policy_by_name(name)
    restored.restore_state(KEY, json.loads(json.dumps(state)))
    assert restored.export_state(KEY) == state
    assert restored.decide(KEY, 0.0) == original.decide(KEY, 0.0)
    restored.forget(KEY)
    assert restored.export_state(KEY) is None


def test_restore_refuses_other_bins() -> None:
    state = hand_made_histogram().to_dict()
    with pytest.raises(ValueError, match="different histogram bins"):
        HybridHistogram(bin_s=30.0).restore_state(KEY, state)


def test_functions_are_kept_apart() -> None:
    policy = ColdStartBudget()
    feed(policy, [30 * MIN] * 12, key="cron")
    assert policy.decide("other", 0.0).reason != "histogram"


# --- invariants ---------------------------------------------------------------------------

idle_times = st.lists(
    st.one_of(
        st.floats(0.0, 4 * HOUR, allow_nan=False),
        st.floats(4 * HOUR, 48 * HOUR, allow_nan=False),
        st.sampled_from([0.0, 60.0, 30 * MIN, 4 * HOUR]),
    ),
    max_size=40,
)
bursts = st.integers(1, 60)
policies = st.sampled_from(["fixed", "hybrid", "budget"])


@settings(max_examples=150, deadline=None)
@given(name=policies, idle=idle_times, calls=bursts)
def test_every_decision_is_a_valid_window(name: str, idle: list[float], calls: int) -> None:
    policy = keep_alive_policy_by_name(name)
    now = 0.0
    policy.observe(KEY, now, calls)
    for gap in [*idle, None]:
        d = policy.decide(KEY, now + 1.0)
        assert d.keep_alive_s >= 0
        if d.prewarm_after_s is not None:
            assert 0 < d.prewarm_after_s < d.keep_alive_s
        if gap is None:
            break
        now += 1.0 + gap
        policy.observe(KEY, now, calls)


@settings(max_examples=100, deadline=None)
@given(name=policies, idle=idle_times, calls=bursts)
def test_decisions_depend_only_on_the_history(name: str, idle: list[float], calls: int) -> None:
    a = feed(keep_alive_policy_by_name(name), idle, calls)
    b = feed(keep_alive_policy_by_name(name), idle, calls, key="another function")
    assert a == b


@settings(max_examples=100, deadline=None)
@given(idle=st.lists(st.floats(0.0, 4 * HOUR - 1, allow_nan=False), min_size=10, max_size=40))
def test_hybrid_window_covers_its_own_percentiles(idle: list[float]) -> None:
    d = feed(HybridHistogram(), idle)
    if d.reason != "histogram":
        return
    ordered = sorted(idle)
    # The window reaches at least the 99th-percentile idle time it was built from ...
    assert d.keep_alive_s > ordered[math.ceil(0.99 * len(ordered)) - 1]
    # ... and never pre-warms after the 5th-percentile one.
    if d.prewarm_after_s is not None:
        assert d.prewarm_after_s <= ordered[math.ceil(0.05 * len(ordered)) - 1]
