"""The node pool at run time: nodes from a VM provider, containers placed onto them.

Decisions come from the pure modules (`placement` picks a node, `autoscale` decides scale-out
and consolidation); this module carries them out against a provider and keeps the books.
A container is placed before it is created and freed after it is gone, so no node is ever
promised more than its limits allow. Each node's `allocations` are its books; which node a
container is on is its owner's to keep (the invoker's slot table), and to name when freeing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from invoker.nodes.autoscale import (
    decide_release,
    decide_scale_in,
    decide_scale_out,
    packing_problem,
)
from invoker.nodes.consolidation import ConsolidationPlanner
from invoker.nodes.model import Flavor, NoCapacity, Node, demand_for
from invoker.nodes.overcommit import OvercommitLimits
from invoker.nodes.placement import (
    MEMORY_DIM,
    NodeState,
    NodeView,
    PlacementLimits,
    PlacementPolicy,
    Vector,
    within,
)
from invoker.providers.base import NodeProvider

log = logging.getLogger("nimbus.nodes")


@dataclass(frozen=True)
class NodePoolConfig:
    """Bounds and choices of the node pool."""

    flavors: tuple[Flavor, ...]
    min_nodes: int = 1
    max_nodes: int = 4
    consolidate_below: float = 0.5  # utilisation under which a node is a drain candidate
    min_node_age_s: float = 60.0  # do not consolidate a node younger than this
    memory_overcommit: float = 1.0
    """Cap on a node's full memory limits over its memory (`OvercommitLimits.max_ratio`).
    Above 1.0, idle containers count at their deflated size (ballooning) and more of them
    fit; a new container still needs its full size free. 1.0: no memory overcommit."""


class NodePool:
    """Places containers onto nodes and grows or shrinks the pool of nodes."""

    def __init__(
        self,
        provider: NodeProvider,
        policy: PlacementPolicy,
        limits: PlacementLimits,
        config: NodePoolConfig,
        *,
        clock: Callable[[], float],
        on_change: Callable[[Node], None] | None = None,
    ) -> None:
        self.provider = provider
        self._policy = policy
        self._limits = limits
        self._config = config
        self._clock = clock
        self._on_change = on_change or (lambda node: None)
        self.nodes: dict[str, Node] = {}
        self._grow = asyncio.Lock()
        self.last_needed: int | None = None  # the planner's latest count
        self.overcommit = OvercommitLimits(config.memory_overcommit)

    async def start(self) -> None:
        """Adopt the provider's existing nodes, then provision up to the minimum."""
        await asyncio.to_thread(self.provider.cleanup)
        for node in await self.provider.list():
            self.nodes[node.id] = node
        for flavor in decide_scale_out(
            [],
            list(self.nodes.values()),
            self._config.flavors,
            self._config.min_nodes,
            self._config.max_nodes,
            limits=self._limits,
        ):
            await self._provision(flavor)

    async def close(self) -> None:
        """Release every node (their containers are gone by now)."""
        for node in list(self.nodes.values()):
            node.allocations.clear()
            node.drain()
            with contextlib.suppress(Exception):
                await self.provider.release(node.id)
            self._on_change(node)
        await asyncio.to_thread(self.provider.cleanup)

    async def _provision(self, flavor: Flavor) -> Node:
        node = await self.provider.provision(flavor)
        self.nodes[node.id] = node
        self._on_change(node)
        log.info("node %s (%s) is up", node.id, flavor.name)
        return node

    def _views(self, demand: Vector) -> list[NodeView]:
        """Ready nodes whose overcommit cap leaves room for `demand`, memory as resident."""
        ratio = self.overcommit.max_ratio
        return [
            n.resident_view()
            for n in self.nodes.values()
            if n.state is NodeState.READY
            and within(n.allocated_memory_mb + demand[MEMORY_DIM], n.flavor.memory_mb * ratio)
        ]

    def _try_place(self, container: str, demand: Vector) -> Node | None:
        chosen = self._policy.place(demand, self._views(demand))
        if chosen is None:
            return None
        node = self.nodes[chosen]
        node.allocate(container, demand, self._limits, self.overcommit.max_ratio)
        return node

    async def place(self, container: str, memory_mb: int) -> Node | None:
        """A node for a new container, growing the pool when none has room.

        NoCapacity when it may not grow; None where the provider lets an unplaced container
        wait for capacity (a Pending pod on Kubernetes).
        """
        demand = demand_for(memory_mb)
        node = self._try_place(container, demand)
        if node is not None:
            return node
        async with self._grow:
            node = self._try_place(container, demand)  # another call may have grown it
            if node is not None:
                return node
            if self.provider.unplaced_ok:
                await self._refresh()
                return self._try_place(container, demand)
            wanted = decide_scale_out(
                [demand],
                list(self.nodes.values()),
                self._config.flavors,
                self._config.min_nodes,
                self._config.max_nodes,
                limits=self._limits,
            )
            if not wanted:
                raise NoCapacity(
                    f"no node has room for {memory_mb} MB and the pool is at its maximum of "
                    f"{self._config.max_nodes} nodes"
                )
            for flavor in wanted:
                await self._provision(flavor)
            node = self._try_place(container, demand)
            if node is None:
                raise NoCapacity(f"no node flavor can hold a {memory_mb} MB container")
            return node

    def place_on(self, container: str, memory_mb: int, node_id: str) -> Node:
        """Book a new container on a named node (a migration's target); NoCapacity when that
        node is not ready or has no room for it."""
        node = self.nodes.get(node_id)
        if node is None:
            raise NoCapacity(f"there is no node {node_id}")
        try:
            node.allocate(container, demand_for(memory_mb), self._limits, self.overcommit.max_ratio)
        except ValueError as exc:
            raise NoCapacity(str(exc)) from None
        return node

    def regrow(self, container: str, node_id: str, memory_mb: int) -> bool:
        """Book a container at a new memory size on its node (its function's memory changed);
        False, the books unchanged, when the node cannot hold the new size."""
        node = self.nodes.get(node_id)
        if node is None or container not in node.allocations:
            return False
        try:
            node.reallocate(
                container, demand_for(memory_mb), self._limits, self.overcommit.max_ratio
            )
        except ValueError:
            return False
        return True

    async def resize(self, node_id: str, vcpu: float, memory_mb: int) -> Node:
        """Operator: change a node's size while it runs (vertical scaling).

        The books decide first (ValueError when what is allocated would not fit: nothing
        changes); only then does the provider write the node's new limits, and when that
        fails (`NotResizable`, a cgroup refusing) the books are rolled back. KeyError for
        an unknown node.
        """
        node = self.nodes[node_id]
        before = node.flavor
        node.resize(vcpu, memory_mb, self._limits)
        try:
            await self.provider.resize(node, vcpu, memory_mb)
        except BaseException:
            node.flavor = before
            # A write that got halfway (memory done, CPU refused) is put back, where it can be.
            with contextlib.suppress(Exception):
                await self.provider.resize(node, before.vcpu, before.memory_mb)
            raise
        self._on_change(node)
        log.info("node %s resized to %g vCPU, %d MB", node_id, vcpu, memory_mb)
        return node

    async def _refresh(self) -> None:
        """Re-read the provider's nodes (a cluster may have gained one), keeping our books."""
        for node in await self.provider.list():
            known = self.nodes.get(node.id)
            if known is None:
                self.nodes[node.id] = node
            elif node.state is NodeState.DRAINING and known.state is NodeState.READY:
                known.drain()

    def free(self, container: str, node_id: str) -> None:
        """The container placed on `node_id` is gone: give its resources back."""
        node = self.nodes.get(node_id)
        if node is not None:
            node.free(container)

    def cgroup_parent(self, node_id: str) -> str | None:
        """Where containers of `node_id` go in the cgroup tree (None if not enforced)."""
        return self.provider.cgroup_parent(node_id) if self.provider.enforced else None

    async def add(self, flavor_name: str) -> Node:
        """Operator: provision a node of a named flavor (bounded by max_nodes)."""
        flavor = self.flavor(flavor_name)
        live = [n for n in self.nodes.values() if n.state is not NodeState.RELEASED]
        if len(live) >= self._config.max_nodes:
            raise NoCapacity(f"the pool is at its maximum of {self._config.max_nodes} nodes")
        return await self._provision(flavor)

    @property
    def limits(self) -> PlacementLimits:
        """The placement limits every node's books are kept under."""
        return self._limits

    @property
    def flavors(self) -> tuple[Flavor, ...]:
        """The node sizes this pool may provision."""
        return self._config.flavors

    def flavor(self, name: str) -> Flavor:
        """A flavor by name; KeyError if unknown."""
        for flavor in self._config.flavors:
            if flavor.name == name:
                return flavor
        raise KeyError(name)

    def drain(self, node_id: str) -> None:
        """Operator or consolidation: no new containers on this node."""
        self.nodes[node_id].drain()
        self._on_change(self.nodes[node_id])

    async def nodes_needed(self) -> int | None:
        """How few nodes the ready nodes' containers would need, packed afresh.

        The offline consolidation planner (FFD variants plus a bin-emptying local search)
        on a snapshot taken on the loop, run on a thread with a small time budget: this
        runs every consolidation round. None when ready nodes differ in size.
        """
        problem = packing_problem(list(self.nodes.values()), self._limits)
        needed: int | None = None
        if problem is not None:
            items, capacity = problem
            needed = 0
            if items:
                planner = ConsolidationPlanner(time_budget_s=0.02, max_iterations=2000)
                needed = len(await asyncio.to_thread(planner.plan, items, capacity))
        self.last_needed = needed
        return needed

    def packing(self) -> tuple[int, int | None]:
        """(ready nodes, nodes needed at the last consolidation round), for metrics."""
        ready = sum(1 for n in self.nodes.values() if n.state is NodeState.READY)
        return ready, self.last_needed

    def plan_consolidation(self, needed: int | None = None) -> list[str]:
        """Under-used nodes whose containers fit elsewhere: drain these (pure decision).

        `needed` (from `nodes_needed`) caps the drains at the slack the planner sees, so
        consolidation never drains below what a fresh packing of today's load needs.
        """
        ready = sum(1 for n in self.nodes.values() if n.state is NodeState.READY)
        slack = 1 if needed is None else ready - max(needed, self._config.min_nodes)
        if slack <= 0:
            return []
        return decide_scale_in(
            list(self.nodes.values()),
            self._clock(),
            min_nodes=self._config.min_nodes,
            utilisation_below=self._config.consolidate_below,
            min_ready_s=self._config.min_node_age_s,
            max_drains=min(1, slack),
            limits=self._limits,
        )

    async def release_drained(self) -> list[str]:
        """Release draining nodes that have nothing left on them."""
        released = []
        for node_id in decide_release(list(self.nodes.values())):
            await self.provider.release(node_id)
            node = self.nodes.pop(node_id)
            self._on_change(node)
            released.append(node_id)
            log.info("node %s released", node_id)
        return released

    def containers_on(self, node_id: str) -> Sequence[str]:
        """The containers placed on a node."""
        return sorted(self.nodes[node_id].allocations)

    def memory_gauges(self) -> list[tuple[str, float, float, float, float]]:
        """(node, resident MB, overcommit ratio, its cap, memory pressure) for metrics."""
        return [
            (
                n.id,
                float(n.resident_mb),
                n.overcommit_ratio,
                self.overcommit.max_ratio,
                n.memory_pressure,
            )
            for n in self.nodes.values()
        ]

    def gauges(self) -> list[tuple[str, str, float, float]]:
        """(node, resource, allocated, capacity) for metrics."""
        out = []
        for node in self.nodes.values():
            vcpu, memory = node.allocated
            out.append((node.id, "vcpu", float(vcpu), float(node.flavor.vcpu)))
            out.append((node.id, "memory_mb", float(memory), float(node.flavor.memory_mb)))
        return out
