"""Memory overcommit: idle containers count at their deflated size, calls at their full size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.nodes.overcommit import (
    DEFAULT_MAX_RATIO,
    Admit,
    Elsewhere,
    NodeMemory,
    OvercommitLimits,
    Resident,
    admit_call,
    admit_cold,
    admit_idle,
    place_cold,
)


def idle(cid: str, memory_mb: int, limit_mb: int, value: float = 0.0) -> Resident:
    return Resident(cid, memory_mb, limit_mb, busy=False, keep_value=value)


def busy(cid: str, memory_mb: int) -> Resident:
    return Resident(cid, memory_mb, memory_mb, busy=True)


def test_more_warm_containers_fit_deflated() -> None:
    # A 2 GiB node: 16 full-size 128 MB containers, or 32 deflated to 64 MB (ratio 2.0).
    node = NodeMemory("n", 2048)
    for k in range(40):
        if not admit_idle(node, 128, 64):
            break
        node = node.replace(idle(f"c{k}", 128, 64))
    assert len(node.containers) == 32
    assert node.resident_mb == 2048 and node.ratio == DEFAULT_MAX_RATIO


def test_a_call_starts_only_when_its_full_memory_fits() -> None:
    node = NodeMemory("n", 1024, (busy("b", 768), idle("x", 512, 128, value=5)))
    # Inflating x needs 384 more MB: only 128 free, and nothing else to evict.
    assert admit_call(node, "x") == Elsewhere("busy containers hold the node's memory")
    roomy = NodeMemory("n", 2048, node.containers)
    assert admit_call(roomy, "x") == Admit()


def test_evicts_lowest_keep_value_first_and_no_more_than_needed() -> None:
    node = NodeMemory(
        "n",
        1024,
        (
            busy("b", 256),
            idle("x", 512, 128, value=9),  # the one called
            idle("cheap", 256, 128, value=1),
            idle("dear", 256, 128, value=8),
            idle("mid", 256, 128, value=3),
        ),
    )
    # resident 768, inflating x needs 384: free 256, so 128 more: one eviction, the cheapest.
    assert admit_call(node, "x") == Admit(("cheap",))
    # A cold 512 MB container needs 256 more than is free: cheap, then mid.
    assert admit_cold(node, 512) == Admit(("cheap", "mid"))


def test_the_cap_bounds_the_sum_of_full_limits() -> None:
    node = NodeMemory("n", 1024, (idle("a", 1024, 64), idle("b", 512, 64, value=1)))
    limits = OvercommitLimits(max_ratio=1.5)
    assert not admit_idle(node, 256, 32, limits)  # 1792 > 1536, though resident is tiny
    assert admit_idle(node, 256, 32, OvercommitLimits(max_ratio=2.0))
    # A cold start under the cap evicts for the cap, not for resident memory.
    assert admit_cold(node, 256, limits) == Admit(("a",))
    with pytest.raises(ValueError):
        OvercommitLimits(max_ratio=0.5)


def test_go_elsewhere_when_too_big_or_busy() -> None:
    assert isinstance(admit_cold(NodeMemory("n", 512), 1024), Elsewhere)
    full = NodeMemory("n", 512, (busy("b", 512),))
    assert isinstance(admit_cold(full, 128), Elsewhere)
    with pytest.raises(KeyError):
        admit_call(full, "nope")


def test_busy_containers_are_never_deflated() -> None:
    with pytest.raises(ValueError):
        Resident("c", 256, 128, busy=True)
    with pytest.raises(ValueError):
        Resident("c", 256, 512)


def test_place_cold_prefers_no_eviction_then_cheapest() -> None:
    a = NodeMemory("a", 1024, (busy("a1", 768), idle("a2", 256, 256, value=1)))
    b = NodeMemory("b", 1024, (busy("b1", 512),))
    c = NodeMemory("c", 1024, (busy("c1", 768), idle("c2", 256, 256, value=7)))
    assert place_cold([a, b, c], 256) == ("b", Admit())
    assert place_cold([a, c], 256) == ("a", Admit(("a2",)))
    assert place_cold([a, c], 2048) is None


# --- property: random operations never break the promises -----------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["cold", "call", "end", "deflate", "idle"]),
        st.integers(0, 3),  # node
        st.integers(0, 50),  # which container (modulo what is there)
        st.sampled_from([128, 256, 512, 1024]),  # memory_mb
        st.floats(0.05, 1.0),  # deflated fraction
        st.floats(0, 100),  # keep value
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, ratio=st.sampled_from([1.0, 1.5, 2.0, 3.0]))
def test_busy_memory_never_exceeds_capacity_and_the_cap_holds(
    ops: list[tuple[str, int, int, int, float, float]], ratio: float
) -> None:
    limits = OvercommitLimits(max_ratio=ratio)
    nodes = [NodeMemory(f"n{k}", 2048) for k in range(4)]
    serial = 0
    for op, k, pick, memory_mb, frac, value in ops:
        node = nodes[k]
        serial += 1
        cid = f"c{serial}"
        deflated = max(1, int(memory_mb * frac))
        if op == "cold":
            placed = place_cold(nodes, memory_mb, limits)
            if placed is not None:
                nid, answer = placed
                i = int(nid[1:])
                nodes[i] = nodes[i].replace(busy(cid, memory_mb), drop=answer.evict)
        elif op == "idle":
            if admit_idle(node, memory_mb, deflated, limits):
                nodes[k] = node.replace(idle(cid, memory_mb, deflated, value))
        elif node.containers:
            c = node.containers[pick % len(node.containers)]
            if op == "call":
                inflation = admit_call(node, c.id, limits)
                if isinstance(inflation, Admit):
                    assert c.id not in inflation.evict
                    assert not any(x.busy for x in node.containers if x.id in inflation.evict)
                    nodes[k] = node.replace(busy(c.id, c.memory_mb), drop=inflation.evict)
            elif op == "end" and c.busy:
                nodes[k] = node.replace(idle(c.id, c.memory_mb, c.memory_mb, value))
            elif op == "deflate" and not c.busy:
                # Deflating only ever lowers a limit (raising one goes through admission).
                lower = min(c.limit_mb, max(1, int(c.memory_mb * frac)))
                nodes[k] = node.replace(idle(c.id, c.memory_mb, lower))
        for n in nodes:
            assert n.busy_mb <= n.resident_mb <= n.capacity_mb
            assert n.allocated_mb <= n.capacity_mb * ratio
