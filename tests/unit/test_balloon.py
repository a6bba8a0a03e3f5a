"""The ballooning policy: when an idle container deflates, to what, and inflating back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.containers.balloon import (
    MB,
    BalloonConfig,
    BalloonView,
    Deflate,
    Hold,
    Inflate,
    before_call,
    decide,
    saving_mb,
    target_mb,
    working_set_mb,
)

CFG = BalloonConfig()


def idle(
    memory_mb: int = 512, limit_mb: int | None = None, ws: float | None = 100.0, since: float = 0.0
) -> BalloonView:
    return BalloonView(memory_mb, limit_mb or memory_mb, ws, since)


def test_deflates_to_working_set_plus_headroom_after_the_grace() -> None:
    # 100 MB working set: headroom max(16, 10) = 16 -> 116 -> rounded up to 4 MB: 116.
    assert decide(idle(ws=100.0), now=2.0, config=CFG) == Deflate(116)
    # 400 MB: headroom 40 -> 440.
    assert decide(idle(ws=400.0), now=5.0, config=CFG) == Deflate(440)


def test_waits_for_the_idle_grace_and_says_when_to_ask_again() -> None:
    assert decide(idle(since=10.0), now=11.5, config=CFG) == Hold("within idle grace", 12.0)
    assert isinstance(decide(idle(since=10.0), now=12.0, config=CFG), Deflate)


def test_never_during_a_call() -> None:
    busy = BalloonView(512, 512, 100.0, idle_since=None, in_flight=1)
    assert decide(busy, now=1e6, config=CFG) == Hold("busy")
    racing = BalloonView(512, 512, 100.0, idle_since=0.0, in_flight=2)
    assert isinstance(decide(racing, now=1e6, config=CFG), Hold)


def test_not_without_a_measurement() -> None:
    assert isinstance(decide(idle(ws=None), now=100.0, config=CFG), Hold)


def test_floor_cap_and_small_savings() -> None:
    assert target_mb(512, 1.0, CFG) == 32  # the floor
    assert target_mb(128, 500.0, CFG) == 128  # never above memory_mb
    # A 128 MB function using 110 MB would save 2 MB: not worth a write.
    assert decide(idle(memory_mb=128, ws=110.0), now=9.0, config=CFG) == Hold("too little to save")


def test_growing_idle_working_set_inflates_a_deflated_container() -> None:
    deflated = idle(limit_mb=116, ws=150.0)
    assert decide(deflated, now=9.0, config=CFG) == Inflate(168)
    steady = idle(limit_mb=116, ws=100.0)
    assert decide(steady, now=9.0, config=CFG) == Hold("already at its working set")


def test_a_call_always_gets_its_full_memory() -> None:
    assert before_call(idle(limit_mb=116)) == Inflate(512)
    assert before_call(idle()) is None


def test_working_set_excludes_inactive_page_cache() -> None:
    assert working_set_mb(300 * MB, 100 * MB) == 200.0
    assert working_set_mb(10 * MB, 50 * MB) == 0.0


def test_saving() -> None:
    assert saving_mb([idle(limit_mb=116), idle(), idle(memory_mb=256, limit_mb=64)]) == 588


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        BalloonConfig(granularity_mb=0)
    with pytest.raises(ValueError):
        BalloonConfig(headroom_fraction=-0.1)


@settings(max_examples=300, deadline=None)
@given(
    memory_mb=st.integers(1, 10_240),
    ws=st.floats(0, 20_000, allow_nan=False),
    limit_frac=st.floats(0.01, 1.0),
    idle_for=st.floats(0, 100),
)
def test_limits_stay_sane(memory_mb: int, ws: float, limit_frac: float, idle_for: float) -> None:
    limit = max(1, int(memory_mb * limit_frac))
    view = BalloonView(memory_mb, limit, ws, idle_since=0.0)
    d = decide(view, now=idle_for, config=CFG)
    if isinstance(d, Deflate | Inflate):
        # Never above the function's memory; never below the floor unless the function is
        # smaller than it; always above the working set unless capped by memory_mb.
        assert d.limit_mb <= memory_mb
        assert d.limit_mb >= min(CFG.floor_mb, memory_mb)
        assert d.limit_mb >= min(ws, memory_mb)
        assert d.limit_mb % CFG.granularity_mb == 0 or d.limit_mb == memory_mb
        assert idle_for >= CFG.idle_grace_s
    if isinstance(d, Deflate):
        assert d.limit_mb <= limit - CFG.min_saving_mb
