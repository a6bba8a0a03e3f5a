"""The node pool's consolidation round: the offline planner caps what is drained."""

from __future__ import annotations

import builtins

from invoker.nodes.model import Flavor, Node
from invoker.nodes.node_pool import NodePool, NodePoolConfig
from invoker.nodes.placement import BestFit, NodeState, PlacementLimits

TINY = Flavor("tiny", 1.0, 1024, 0.01)


class Provider:
    """Nodes that exist at once: the pool's bookkeeping is what is under test."""

    name = "test"
    enforced = False

    def __init__(self) -> None:
        self.count = 0

    async def list(self) -> builtins.list[Node]:
        return []

    async def provision(self, flavor: Flavor) -> Node:
        self.count += 1
        node = Node(f"n{self.count}", flavor, created_at=0.0)
        node.mark_ready(0.0)
        return node

    async def release(self, node_id: str) -> None:
        return None

    def cgroup_parent(self, node_id: str) -> str | None:
        return None

    def cleanup(self) -> None:
        return None


async def pool_with(*memories: list[int]) -> NodePool:
    """A pool with one node per list, holding containers of those sizes."""
    limits = PlacementLimits(cpu_overcommit=4.0)
    pool = NodePool(
        Provider(),
        BestFit(limits),
        limits,
        NodePoolConfig(flavors=(TINY,), min_nodes=len(memories), max_nodes=10, min_node_age_s=0),
        clock=lambda: 100.0,
    )
    await pool.start()
    pool._config = NodePoolConfig(flavors=(TINY,), min_nodes=1, max_nodes=10, min_node_age_s=0)
    for node, sizes in zip(pool.nodes.values(), memories, strict=True):
        for k, mb in enumerate(sizes):
            node.allocate(f"{node.id}-{k}", (mb / 1769, mb), limits)
    return pool


async def test_three_thin_nodes_need_one_and_consolidation_drains_one_at_a_time() -> None:
    pool = await pool_with([256], [256], [256])
    assert await pool.nodes_needed() == 1
    drains = pool.plan_consolidation(await pool.nodes_needed())
    assert len(drains) == 1
    pool.drain(drains[0])
    assert pool.nodes[drains[0]].state is NodeState.DRAINING


async def test_no_drain_when_a_fresh_packing_needs_every_node() -> None:
    # 600 + 600 + 500 MB on 1024 MB nodes: no two fit together.
    pool = await pool_with([600], [600], [500])
    assert await pool.nodes_needed() == 3
    assert pool.plan_consolidation(3) == []


async def test_the_planners_count_caps_the_drains() -> None:
    pool = await pool_with([256], [256], [256])
    assert len(pool.plan_consolidation(None)) == 1  # best-fit re-placement alone: drain one
    assert pool.plan_consolidation(3) == []  # a planner that needs all three: drain none


async def test_an_empty_pool_needs_no_nodes_and_mixed_sizes_have_no_answer() -> None:
    pool = await pool_with([], [])
    assert await pool.nodes_needed() == 0
    pool.nodes["big"] = Node("big", Flavor("big", 4.0, 8192, 0.1), created_at=0.0)
    pool.nodes["big"].mark_ready(0.0)
    assert await pool.nodes_needed() is None
