"""Placement policies and offline packing: what an operator relies on."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.nodes.consolidation import ConsolidationPlanner
from invoker.nodes.packing import (
    OFFLINE_HEURISTICS,
    bin_centric,
    first_fit_decreasing,
    lower_bound,
    offline_packing,
    validate_packing,
)
from invoker.nodes.placement import (
    POLICY_NAMES,
    BestFit,
    DotProductFit,
    FirstFit,
    L2NormFit,
    NextFit,
    NodeState,
    NodeView,
    PlacementLimits,
    RandomFit,
    Resources,
    Vector,
    WorstFit,
    placement_policy_by_name,
    vadd,
)

CAP = (4.0, 8192)


def node(
    nid: str, cpu: float, mem: int, cap: Vector = CAP, state: NodeState = NodeState.READY
) -> NodeView:
    return NodeView(nid, cap, (cpu, mem), state)


# --------------------------------------------------------------------------------------------
# Invariants, for every policy
# --------------------------------------------------------------------------------------------

demands = st.tuples(
    st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0, 3.0]), st.integers(min_value=64, max_value=8192)
)
flavors = st.sampled_from([(2.0, 4096), (4.0, 8192), (8.0, 16384)])


@st.composite
def clusters(draw: st.DrawFn) -> tuple[PlacementLimits, list[NodeView]]:
    limits = PlacementLimits(
        cpu_overcommit=draw(st.sampled_from([1.0, 2.0, 4.0])),
        hot_spot_threshold=draw(st.none() | st.sampled_from([0.5, 0.8, 1.0])),
    )
    views = []
    for k in range(draw(st.integers(min_value=0, max_value=6))):
        cap = draw(flavors)
        cpu = draw(st.floats(min_value=0, max_value=cap[0] * limits.cpu_overcommit))
        mem = draw(st.integers(min_value=0, max_value=int(cap[1])))
        state = draw(st.sampled_from(list(NodeState)))
        views.append(NodeView(f"n{k}", cap, (cpu, mem), state))
    return limits, views


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(POLICY_NAMES), cluster=clusters(), demand=demands)
def test_a_placed_container_fits_and_none_means_nothing_fits(
    name: str, cluster: tuple[PlacementLimits, list[NodeView]], demand: Vector
) -> None:
    limits, views = cluster
    policy = placement_policy_by_name(
        name,
        cpu_overcommit=limits.cpu_overcommit,
        hot_spot_threshold=limits.hot_spot_threshold,
        rng=random.Random(0),
        cyclic=True,
    )
    chosen = policy.place(demand, views)
    fitting = [v for v in views if v.state is NodeState.READY and limits.fits(demand, v)]
    if chosen is None:
        assert fitting == []
        return
    target = next(v for v in views if v.id == chosen)
    assert target.state is NodeState.READY
    after = vadd(target.allocated, demand)
    assert after[1] <= target.capacity[1]  # memory is never overcommitted
    assert after[0] <= target.capacity[0] * limits.cpu_overcommit + 1e-9
    if (
        limits.hot_spot_threshold is not None
        and limits.utilisation(target) > limits.hot_spot_threshold
    ):
        # A hot node only when no cool node could take it.
        assert all(limits.utilisation(v) > limits.hot_spot_threshold for v in fitting)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(POLICY_NAMES),
    ratio=st.sampled_from([1.0, 4.0]),
    stream=st.lists(demands, min_size=1, max_size=60),
)
def test_no_node_is_ever_overcommitted(name: str, ratio: float, stream: list[Vector]) -> None:
    policy = placement_policy_by_name(name, cpu_overcommit=ratio, rng=random.Random(1))
    views: list[NodeView] = []
    for demand in stream:
        chosen = policy.place(demand, views)
        if chosen is None:
            views.append(NodeView(str(len(views)), CAP, demand))
        else:
            k = int(chosen)
            views[k] = NodeView(chosen, CAP, vadd(views[k].allocated, demand))
    for v in views:
        assert v.allocated[1] <= CAP[1]
        assert v.allocated[0] <= CAP[0] * ratio + 1e-9
    assert sum(v.allocated[1] for v in views) == sum(d[1] for d in stream)


# --------------------------------------------------------------------------------------------
# Each policy does what its name says
# --------------------------------------------------------------------------------------------


def test_first_fit_takes_the_first_node_that_fits() -> None:
    views = [node("full", 0, 8000), node("a", 0, 4000), node("b", 0, 0)]
    assert FirstFit().place((1.0, 1024), views) == "a"


def test_best_fit_takes_the_fullest_node_and_worst_fit_the_emptiest() -> None:
    views = [
        node("half", 2.0, 4096),
        node("empty", 0, 0),
        node("most", 3.0, 6144),
        node("full", 4.0, 8192),
    ]
    assert BestFit().place((0.5, 512), views) == "most"
    assert WorstFit().place((0.5, 512), views) == "empty"


def test_dot_product_prefers_room_where_the_demand_is_large() -> None:
    cpu_free = node("cpu-free", 0.5, 6144)  # much CPU left, little memory
    mem_free = node("mem-free", 3.5, 1024)  # much memory left, little CPU
    assert DotProductFit().place((0.5, 256), [mem_free, cpu_free]) == "cpu-free"
    assert DotProductFit().place((0.1, 1024), [cpu_free, mem_free]) == "mem-free"


def test_l2_norm_prefers_the_node_the_demand_fills_exactly() -> None:
    exact = node("exact", 3.0, 7168)  # exactly (1.0, 1024) left
    roomy = node("roomy", 1.0, 2048)
    assert L2NormFit().place((1.0, 1024), [roomy, exact]) == "exact"


def test_next_fit_stays_on_its_node_and_never_looks_back() -> None:
    policy = NextFit()
    views = [node("a", 0, 0), node("b", 0, 0)]
    assert policy.place((1.0, 4096), views) == "a"
    views[0] = node("a", 1.0, 4096)
    assert policy.place((1.0, 4096), views) == "a"
    views[0] = node("a", 2.0, 8192)
    assert policy.place((1.0, 4096), views) == "b"
    # Room opens up on "a" again: next fit does not go back to it.
    views = [node("a", 0, 0), node("b", 3.0, 8000)]
    assert policy.place((1.0, 1024), views) is None
    # The node opened for that demand becomes current.
    views.append(node("c", 1.0, 1024))
    assert policy.place((1.0, 1024), views) == "c"


def test_cyclic_next_fit_wraps_round() -> None:
    policy = NextFit(cyclic=True)
    views = [node("a", 0, 0), node("b", 0, 0)]
    policy.place((1.0, 1024), views)
    views = [node("a", 0, 0), node("b", 4.0, 8192)]
    assert policy.place((1.0, 1024), [views[1], views[0]]) == "a"


def test_random_fit_is_seeded_and_only_picks_fitting_nodes() -> None:
    views = [node("a", 0, 0), node("full", 4.0, 8192), node("b", 0, 0), node("c", 0, 0)]
    picks = [RandomFit(rng=random.Random(7)).place((1.0, 1024), views) for _ in range(3)]
    assert len(set(picks)) == 1  # same seed, same choice
    policy = RandomFit(rng=random.Random(7))
    seen = {policy.place((1.0, 1024), views) for _ in range(200)}
    assert seen == {"a", "b", "c"}


def test_cpu_overcommit_applies_to_cpu_only() -> None:
    views = [node("n", 4.0, 0)]
    assert FirstFit().place((1.0, 128), views) is None
    assert FirstFit(PlacementLimits(cpu_overcommit=4.0)).place((1.0, 128), views) == "n"
    assert (
        FirstFit(PlacementLimits(cpu_overcommit=4.0)).place((0.1, 8193), [node("m", 0, 0)]) is None
    )


def test_hot_nodes_are_skipped_while_another_fits() -> None:
    limits = PlacementLimits(hot_spot_threshold=0.8)
    hot = node("hot", 3.6, 1024)  # 90 % of its CPU
    cool = node("cool", 1.0, 1024)
    assert BestFit(limits).place((0.2, 128), [hot, cool]) == "cool"
    # Only the hot node fits: it is still used rather than refusing.
    assert BestFit(limits).place((0.2, 128), [hot, node("full", 4.0, 0)]) == "hot"


def test_only_ready_nodes_take_containers() -> None:
    views = [
        node("p", 0, 0, state=NodeState.PROVISIONING),
        node("d", 0, 0, state=NodeState.DRAINING),
        node("r", 0, 0, state=NodeState.RELEASED),
    ]
    for name in POLICY_NAMES:
        assert placement_policy_by_name(name).place((0.1, 128), views) is None


def test_fractional_cpus_fill_a_node_exactly() -> None:
    policy = FirstFit()
    views = [node("n", 0.0, 0)]
    for _ in range(40):
        chosen = policy.place((0.1, 1), views)
        assert chosen == "n"
        views = [NodeView("n", CAP, vadd(views[0].allocated, (0.1, 1)))]
    assert policy.place((0.1, 1), views) is None


def test_policy_by_name_rejects_unknown_names_and_resources_round_trip() -> None:
    with pytest.raises(ValueError, match="first-fit"):
        placement_policy_by_name("tightest")
    assert Resources.of(Resources(0.5, 256).vector()) == Resources(0.5, 256)


# --------------------------------------------------------------------------------------------
# Offline packing and the consolidation planner
# --------------------------------------------------------------------------------------------

items_strategy = st.integers(min_value=1, max_value=3).flatmap(
    lambda d: st.tuples(
        st.just(tuple([20] * d)),
        st.lists(st.tuples(*[st.integers(min_value=0, max_value=20)] * d), min_size=1, max_size=40),
    )
)


@settings(max_examples=80, deadline=None)
@given(instance=items_strategy)
def test_planner_places_every_item_once_in_no_more_bins_than_ffd(
    instance: tuple[Vector, list[Vector]],
) -> None:
    capacity, items = instance
    planner = ConsolidationPlanner(time_budget_s=60.0, max_iterations=300, seed=3)
    bins = planner.plan(items, capacity)
    validate_packing(items, capacity, bins)
    assert lower_bound(items, capacity) <= len(bins) <= len(first_fit_decreasing(items, capacity))
    assert all(bins)  # no empty bin is counted


@settings(max_examples=40, deadline=None)
@given(instance=items_strategy, name=st.sampled_from(OFFLINE_HEURISTICS))
def test_every_offline_heuristic_packs_validly(
    instance: tuple[Vector, list[Vector]], name: str
) -> None:
    capacity, items = instance
    validate_packing(items, capacity, offline_packing(name, items, capacity))


def _optimum(items: list[Vector], capacity: Vector) -> int:
    # Exhaustive: smallest k such that some assignment of items to k bins fits.
    for k in range(1, len(items) + 1):
        for assignment in itertools.product(range(k), repeat=len(items)):
            loads: list[Vector] = [tuple(0 for _ in capacity)] * k
            for item, b in zip(items, assignment, strict=True):
                loads[b] = vadd(loads[b], item)
            if all(all(x <= c for x, c in zip(load, capacity, strict=True)) for load in loads):
                return k
    return len(items)


@settings(max_examples=40, deadline=None)
@given(items=st.lists(st.tuples(st.integers(0, 10), st.integers(0, 10)), min_size=1, max_size=6))
def test_lower_bound_never_exceeds_the_optimum(items: list[Vector]) -> None:
    assert lower_bound(items, (10, 10)) <= _optimum(items, (10, 10))


def test_planner_finds_the_packing_ffd_misses() -> None:
    # FFD: [4,4] [3,3,3] [3]; the optimum is [4,3,3] [4,3,3].
    items: list[Vector] = [(4,), (4,), (3,), (3,), (3,), (3,)]
    assert len(first_fit_decreasing(items, (10,))) == 3
    bins = ConsolidationPlanner(time_budget_s=60.0, max_iterations=1000).plan(items, (10,))
    validate_packing(items, (10,), bins)
    assert len(bins) == 2


@pytest.mark.parametrize("seed", range(4))
def test_planner_reaches_the_optimum_every_heuristic_misses(seed: int) -> None:
    # 20 bins each cut exactly into three items (in both dimensions), shuffled: OPT = 20.
    rng = random.Random(seed)
    items: list[Vector] = []
    for _ in range(20):
        cuts = [sorted(rng.sample(range(1, 100), 2)) for _ in range(2)]
        parts = [(c[0], c[1] - c[0], 100 - c[1]) for c in cuts]
        items += [(parts[0][j], parts[1][j]) for j in range(3)]
    rng.shuffle(items)
    heuristics = min(len(offline_packing(h, items, (100, 100))) for h in OFFLINE_HEURISTICS)
    bins = ConsolidationPlanner(time_budget_s=60.0, max_iterations=20000).plan(items, (100, 100))
    validate_packing(items, (100, 100), bins)
    assert heuristics > 20
    assert len(bins) == 20


def test_bin_centric_dot_product_fills_a_bin_with_aligned_items() -> None:
    # Weights = mean normalised demand = (0.37, 0.5): the empty bin first takes (4, 9), the
    # best-aligned with its room; then (6, 1), the only item that fits the (6, 1) left.
    items: list[Vector] = [(6, 1), (1, 5), (4, 9)]
    bins = bin_centric(items, (10, 10), "dot-product")
    validate_packing(items, (10, 10), bins)
    assert sorted(map(sorted, bins)) == [[0, 2], [1]]


def test_offline_packing_wants_integer_sizes_that_fit_a_bin() -> None:
    with pytest.raises(ValueError, match="integer"):
        first_fit_decreasing([(0.5, 1)], (1, 1))
    with pytest.raises(ValueError, match="larger than a bin"):
        ConsolidationPlanner().plan([(3, 1)], (2, 2))
    with pytest.raises(ValueError, match="over capacity"):
        validate_packing([(2,), (2,)], (3,), [[0, 1]])
    with pytest.raises(ValueError, match="missing"):
        validate_packing([(2,), (2,)], (3,), [[0]])
    assert ConsolidationPlanner().plan([], (1, 1)) == []
