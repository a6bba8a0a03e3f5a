"""The VM pool model and the autoscaler's decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.nodes.autoscale import (
    decide_release,
    decide_scale_in,
    decide_scale_out,
    packing_problem,
)
from invoker.nodes.model import Flavor, Node
from invoker.nodes.placement import (
    FirstFit,
    NodeState,
    NodeView,
    PlacementLimits,
    Vector,
    vadd,
    vsum,
)
from invoker.providers.base import NodeProvider
from invoker.providers.simulated import SimulatedProvider

SMALL = Flavor("small", vcpu=2, memory_mb=4096, price_per_hour=0.1, boot_s=30)
LARGE = Flavor("large", vcpu=8, memory_mb=16384, price_per_hour=0.5, boot_s=60)
LIMITS = PlacementLimits(cpu_overcommit=2.0)


def ready_node(nid: str, flavor: Flavor, *allocs: Vector, ready_at: float = 0.0) -> Node:
    n = Node(nid, flavor, created_at=0.0)
    n.mark_ready(ready_at)
    for k, a in enumerate(allocs):
        n.allocate(f"{nid}-c{k}", a, LIMITS)
    return n


# --------------------------------------------------------------------------------------------
# Node
# --------------------------------------------------------------------------------------------


def test_node_refuses_what_would_overcommit_it_and_tracks_allocations() -> None:
    n = ready_node("n", SMALL, (3.0, 2048))  # CPU 3 of 2 x 2.0 overcommit
    with pytest.raises(ValueError, match="does not fit"):
        n.allocate("big", (0.5, 4096), LIMITS)  # memory never overcommitted
    with pytest.raises(ValueError, match="does not fit"):
        n.allocate("cpu", (1.5, 128), LIMITS)
    n.allocate("ok", (1.0, 2048), LIMITS)
    assert n.allocated == (4.0, 4096)
    assert n.free("n-c0") == (3.0, 2048)
    assert n.allocated == (1.0, 2048)
    assert n.free("gone") is None


def test_node_lifecycle_and_billing() -> None:
    n = Node("n", SMALL, created_at=100.0)
    with pytest.raises(ValueError, match="provisioning"):
        n.allocate("c", (0.1, 128), LIMITS)
    n.mark_ready(130.0)
    n.allocate("c", (0.1, 128), LIMITS)
    n.drain()
    assert n.state is NodeState.DRAINING
    with pytest.raises(ValueError, match="draining"):
        n.allocate("d", (0.1, 128), LIMITS)
    with pytest.raises(ValueError, match="still runs"):
        n.mark_released(200.0)
    n.free("c")
    n.mark_released(3700.0)
    assert n.hours(99999.0) == pytest.approx(1.0)  # billed from request to release


# --------------------------------------------------------------------------------------------
# Scale out
# --------------------------------------------------------------------------------------------


def test_scale_out_when_nothing_fits_picks_the_cheapest_flavor_that_holds_the_backlog() -> None:
    # Six 1 GB containers: two small VMs (0.2/h) beat one large (0.5/h).
    pending = [(0.5, 1024)] * 6
    assert decide_scale_out(pending, [], [LARGE, SMALL], 0, 10, limits=LIMITS) == [SMALL, SMALL]
    # A 6 GB container fits only the large flavor.
    assert decide_scale_out([(1.0, 6144)], [], [SMALL, LARGE], 0, 10, limits=LIMITS) == [LARGE]
    # Bigger than anything on offer: nothing to provision for it.
    assert decide_scale_out([(1.0, 20000)], [], [SMALL, LARGE], 0, 10, limits=LIMITS) == []


def test_scale_out_counts_provisioning_nodes_and_calls_in_flight() -> None:
    booting = Node("b", LARGE)  # provisioning, empty
    pending = [(1.0, 2048)] * 4
    assert decide_scale_out(pending, [booting], [SMALL], 0, 10, limits=LIMITS) == []
    assert decide_scale_out(pending, [], [SMALL], 0, 10, (LARGE,), limits=LIMITS) == []
    # In flight holds only part of it: the rest needs new VMs.
    out = decide_scale_out(pending, [], [SMALL], 0, 10, (SMALL,), limits=LIMITS)
    assert out == [SMALL]


def test_scale_out_tops_up_to_min_nodes() -> None:
    nodes = [ready_node("a", SMALL)]
    assert decide_scale_out([], nodes, [SMALL, LARGE], 3, 10, limits=LIMITS) == [SMALL, SMALL]
    assert decide_scale_out([], nodes, [SMALL], 3, 10, (SMALL,), limits=LIMITS) == [SMALL]


@settings(max_examples=200, deadline=None)
@given(
    pending=st.lists(
        st.tuples(st.sampled_from([0.25, 0.5, 1.0, 2.0]), st.integers(64, 16384)), max_size=30
    ),
    live=st.integers(0, 6),
    booting=st.integers(0, 3),
    in_flight=st.lists(st.sampled_from([SMALL, LARGE]), max_size=3),
    min_nodes=st.integers(0, 5),
    max_nodes=st.integers(0, 12),
)
def test_scale_out_never_passes_max_nodes_and_covers_the_backlog_when_it_may(
    pending: list[Vector],
    live: int,
    booting: int,
    in_flight: list[Flavor],
    min_nodes: int,
    max_nodes: int,
) -> None:
    nodes = [ready_node(f"r{k}", SMALL, (2.0, 4000)) for k in range(live)]
    nodes += [Node(f"b{k}", SMALL) for k in range(booting)]
    released = Node("gone", LARGE)
    released.mark_released(0.0)
    nodes.append(released)  # released nodes do not count
    out = decide_scale_out(pending, nodes, [SMALL, LARGE], min_nodes, max_nodes, in_flight, LIMITS)
    total = live + booting + len(in_flight)
    assert total + len(out) <= max(max_nodes, total)
    if max_nodes >= total + len(pending) + min_nodes:
        assert total + len(out) >= min_nodes
        # Everything pending fits on what is booting, in flight or now requested.
        views = [NodeView(f"b{k}", SMALL.capacity, (0.0, 0)) for k in range(booting)]
        views += [NodeView(f"f{k}", f.capacity, (0.0, 0)) for k, f in enumerate([*in_flight, *out])]
        first_fit = FirstFit(LIMITS)
        for d in sorted(pending, key=lambda v: (-v[1], -v[0])):
            chosen = first_fit.place(d, views)
            assert chosen is not None
            k = next(i for i, v in enumerate(views) if v.id == chosen)
            views[k] = NodeView(chosen, views[k].capacity, vadd(views[k].allocated, d))


# --------------------------------------------------------------------------------------------
# Scale in
# --------------------------------------------------------------------------------------------


def test_two_half_empty_nodes_consolidate_into_one() -> None:
    a = ready_node("a", SMALL, (1.0, 1024))
    b = ready_node("b", SMALL, (1.0, 1536), (0.5, 512))
    assert decide_scale_in([a, b], now=100.0, limits=LIMITS) == ["a"]


def test_a_node_whose_container_fits_nowhere_else_is_kept() -> None:
    a = ready_node("a", SMALL, (0.5, 1800))  # 44 % used
    b = ready_node("b", SMALL, (0.5, 2400))  # 1696 MB free: a's container does not fit
    assert decide_scale_in([a, b], now=100.0, limits=LIMITS) == []


def test_scale_in_respects_min_nodes_age_threshold_and_headroom() -> None:
    a = ready_node("a", SMALL)
    b = ready_node("b", SMALL, (0.5, 512))
    assert decide_scale_in([a, b], now=10.0, min_nodes=2, limits=LIMITS) == []
    assert decide_scale_in([a, b], now=10.0, min_ready_s=60.0, limits=LIMITS) == []
    assert decide_scale_in([a, b], now=100.0, min_ready_s=60.0, limits=LIMITS) == ["a"]
    assert decide_scale_in([b], now=100.0, utilisation_below=0.1, limits=LIMITS) == []
    # Keeping 90 % free: draining either would leave too little room.
    assert decide_scale_in([a, b], now=100.0, headroom=0.9, limits=LIMITS) == []
    assert decide_scale_in([a, b], now=100.0, max_drains=1, limits=LIMITS) == ["a"]


@st.composite
def pools(draw: st.DrawFn) -> list[Node]:
    nodes = []
    for k in range(draw(st.integers(1, 6))):
        flavor = draw(st.sampled_from([SMALL, LARGE]))
        n = ready_node(f"n{k}", flavor, ready_at=draw(st.sampled_from([0.0, 50.0])))
        for j in range(draw(st.integers(0, 6))):
            demand = (draw(st.sampled_from([0.25, 0.5, 1.0])), draw(st.integers(64, 4096)))
            if LIMITS.fits(demand, n.view()):
                n.allocate(f"n{k}-{j}", demand, LIMITS)
        if draw(st.booleans()) and draw(st.booleans()):
            n.drain()
        nodes.append(n)
    return nodes


@settings(max_examples=200, deadline=None)
@given(
    nodes=pools(),
    min_nodes=st.integers(0, 3),
    below=st.sampled_from([0.3, 0.6, 1.0]),
    headroom=st.sampled_from([0.0, 0.2]),
)
def test_scale_in_only_drains_what_the_rest_of_the_pool_can_absorb(
    nodes: list[Node], min_nodes: int, below: float, headroom: float
) -> None:
    chosen = decide_scale_in(
        nodes,
        60.0,
        min_nodes=min_nodes,
        utilisation_below=below,
        min_ready_s=30.0,
        headroom=headroom,
        limits=LIMITS,
    )
    by_id = {n.id: n for n in nodes}
    assert len(set(chosen)) == len(chosen)
    stay = [n for n in nodes if n.state is NodeState.READY and n.id not in chosen]
    assert len(stay) >= min(min_nodes, len([n for n in nodes if n.state is NodeState.READY]))
    for nid in chosen:
        n = by_id[nid]
        assert n.state is NodeState.READY
        assert n.ready_at is not None and 60.0 - n.ready_at >= 30.0
        assert LIMITS.utilisation(n.view()) < below
        # Each of its containers fits on some node that stays.
        for demand in n.allocations.values():
            assert any(LIMITS.fits(demand, s.view()) for s in stay)
    # All moved containers together fit in what stays, in every dimension.
    moved = vsum([d for nid in chosen for d in by_id[nid].allocations.values()], 2)
    room = vsum(
        [
            tuple(c - a for c, a in zip(LIMITS.limit(s.capacity), s.allocated, strict=True))
            for s in stay
        ],
        2,
    )
    assert all(m <= r + 1e-9 for m, r in zip(moved, room, strict=True))
    if headroom and chosen:
        limit = vsum([LIMITS.limit(s.capacity) for s in stay], 2)
        used = vsum([s.allocated for s in stay], 2)
        assert all(
            u + m <= (1 - headroom) * c + 1e-9 for u, m, c in zip(used, moved, limit, strict=True)
        )


def test_the_packing_problem_is_the_ready_nodes_allocations_in_integer_units() -> None:
    a = ready_node("a", SMALL, (0.2172, 384), (1.0, 1024))
    b = ready_node("b", SMALL, (0.5, 512))
    draining = ready_node("c", SMALL, (1.0, 1000))
    draining.drain()
    items, capacity = packing_problem([a, b, draining], LIMITS) or ([], ())
    # Millicores rounded up, the CPU limit overcommitted 2x, memory never.
    assert capacity == (4000, 4096)
    assert sorted(items) == [(218, 384), (500, 512), (1000, 1024)]
    assert packing_problem([a, ready_node("d", LARGE)], LIMITS) is None  # two bin sizes
    assert packing_problem([], LIMITS) is None


def test_release_only_drained_empty_nodes() -> None:
    busy = ready_node("busy", SMALL, (0.5, 128))
    busy.drain()
    empty = ready_node("empty", SMALL)
    empty.drain()
    idle_ready = ready_node("idle", SMALL)
    assert decide_release([busy, empty, idle_ready]) == ["empty"]


# --------------------------------------------------------------------------------------------
# Simulated provider
# --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_simulated_vms_boot_after_their_delay_and_bill_until_released() -> None:
    clock = FakeClock()
    provider = SimulatedProvider(clock)
    assert isinstance(provider, NodeProvider)
    node = await provider.provision(SMALL)
    assert node.state is NodeState.PROVISIONING
    clock.now = 29.0
    assert [n.state for n in await provider.list()] == [NodeState.PROVISIONING]
    clock.now = 31.0
    [listed] = await provider.list()
    assert listed.state is NodeState.READY and listed.ready_at == 30.0
    listed.allocate("c", (0.5, 512), LIMITS)
    with pytest.raises(ValueError, match="still runs"):
        await provider.release(listed.id)
    listed.free("c")
    clock.now = 1800.0
    await provider.release(listed.id)
    assert await provider.list() == []
    clock.now = 7200.0
    assert provider.vm_hours() == pytest.approx(0.5)
    assert provider.cost() == pytest.approx(0.05)
    other = await provider.provision(LARGE)
    assert other.id != node.id
