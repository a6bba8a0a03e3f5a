"""Vertical resizing of a node: the books refuse to take back what was promised."""

from __future__ import annotations

import pytest

from invoker.nodes.model import Flavor, Node
from invoker.nodes.placement import PlacementLimits

SMALL = Flavor("small", 2.0, 1024, 0.10)


def ready_node() -> Node:
    node = Node("n1", SMALL)
    node.mark_ready(0.0)
    return node


def test_a_node_grows_and_its_price_follows_its_size() -> None:
    node = ready_node()
    node.resize(4.0, 2048, PlacementLimits())
    assert node.capacity == (4.0, 2048)
    assert node.price_per_hour == pytest.approx(0.20)
    # The new room is usable at once.
    node.allocate("c1", (3.0, 1800), PlacementLimits())


def test_shrinking_below_what_is_allocated_is_refused_and_changes_nothing() -> None:
    node = ready_node()
    node.allocate("c1", (0.5, 768), PlacementLimits())
    with pytest.raises(ValueError, match="more than"):
        node.resize(2.0, 512, PlacementLimits())
    assert node.capacity == (2.0, 1024) and node.flavor is SMALL
    node.resize(1.0, 768, PlacementLimits())  # exactly what is held still fits
    assert node.capacity == (1.0, 768)


def test_cpu_overcommit_counts_when_shrinking() -> None:
    limits = PlacementLimits(cpu_overcommit=2.0)
    node = ready_node()
    node.allocate("c1", (3.0, 256), limits)  # 3 of 2 vCPU x 2 overcommit
    node.resize(1.5, 1024, limits)  # 1.5 x 2 = 3: still holds
    with pytest.raises(ValueError):
        node.resize(1.0, 1024, limits)


@pytest.mark.parametrize("vcpu, memory_mb", [(0.0, 512), (1.0, 0), (-1.0, 512)])
def test_a_node_needs_some_of_each(vcpu: float, memory_mb: int) -> None:
    with pytest.raises(ValueError):
        ready_node().resize(vcpu, memory_mb, PlacementLimits())


def test_a_container_grows_in_place_only_when_its_node_holds_the_new_size() -> None:
    node = ready_node()
    node.allocate("c1", (0.5, 256), PlacementLimits())
    node.allocate("c2", (0.5, 512), PlacementLimits())
    node.set_limit("c1", 64)  # deflated while idle
    node.reallocate("c1", (0.5, 512), PlacementLimits())
    assert node.allocations["c1"] == (0.5, 512) and node.allocated == (1.0, 1024)
    assert node.deflated == {"c1": 64}  # still deflated: the next call inflates it
    with pytest.raises(ValueError):
        node.reallocate("c1", (0.5, 600), PlacementLimits())
    assert node.allocations["c1"] == (0.5, 512) and node.allocated == (1.0, 1024)
    assert node.deflated == {"c1": 64}
