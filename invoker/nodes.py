"""The node pool at run time: nodes from a VM provider, containers placed onto them.

Decisions come from the pure modules (`placement` picks a node, `vmpool` decides scale-out
and consolidation); this module carries them out against a provider and keeps the books.
A container is placed before it is created and freed after it is gone, so no node is ever
promised more than its limits allow.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from invoker.packing import ConsolidationPlanner
from invoker.placement import NodeState, PlacementLimits, PlacementPolicy, Vector
from invoker.vmpool import (
    Flavor,
    Node,
    decide_release,
    decide_scale_in,
    decide_scale_out,
    packing_problem,
)

log = logging.getLogger("nimbus.nodes")

CGROUP_ROOT = Path("/sys/fs/cgroup")
LAMBDA_MB_PER_VCPU = 1769  # AWS's ratio: what share of a CPU a function's memory buys


class NoCapacity(Exception):
    """No node can take the container and the pool may not grow (503 for the caller)."""


def demand_for(memory_mb: int) -> Vector:
    """What a container asks of a node: a CPU share proportional to memory, and memory."""
    return (round(memory_mb / LAMBDA_MB_PER_VCPU, 4), memory_mb)


class PoolProvider(Protocol):
    """What the node pool needs of a VM provider (see `vmpool.VmProvider`)."""

    name: str
    enforced: bool

    async def list(self) -> builtins.list[Node]: ...

    async def provision(self, flavor: Flavor) -> Node: ...

    async def release(self, node_id: str) -> None: ...

    def cgroup_parent(self, node_id: str) -> str | None: ...

    def cleanup(self) -> None: ...


class LocalProvider:
    """This machine split into VM nodes, each a cgroup whose limits the kernel enforces.

    A node is a cgroup (`/nimbus/<owner>/<node>`) with the flavor's memory limit and CPU
    quota; containers placed on it run with that cgroup as their parent, so together they
    can never take more than the node has. Where cgroups cannot be written (not root, an
    unknown layout) nodes still exist, enforced by bookkeeping only, and `enforced` says so.
    """

    name = "local"

    def __init__(
        self, owner: str, clock: Callable[[], float], *, host_memory_mb: int, id_prefix: str = ""
    ) -> None:
        self._owner = owner
        self._prefix = id_prefix
        self._clock = clock
        self._host_memory_mb = host_memory_mb
        self._nodes: dict[str, Node] = {}
        self._counter = 0
        self.enforced = True

    def cgroup_parent(self, node_id: str) -> str:
        """The cgroup parent Docker gets for containers on `node_id`."""
        return f"/nimbus/{self._owner}/{node_id}"

    async def list(self) -> builtins.list[Node]:
        """Nodes not released."""
        return [n for n in self._nodes.values() if n.state is not NodeState.RELEASED]

    async def provision(self, flavor: Flavor) -> Node:
        """Make a node's cgroup with the flavor's limits; refuses to promise more than RAM."""
        live = sum(n.flavor.memory_mb for n in await self.list())
        if live + flavor.memory_mb > self._host_memory_mb:
            raise NoCapacity(
                f"this machine has no room for another {flavor.name} node "
                f"({live} of {self._host_memory_mb} MB already given to nodes)"
            )
        self._counter += 1
        node = Node(
            id=f"node-{self._prefix}{self._counter}", flavor=flavor, created_at=self._clock()
        )
        await asyncio.to_thread(self._make_cgroup, node)
        node.mark_ready(self._clock())
        self._nodes[node.id] = node
        return node

    async def release(self, node_id: str) -> None:
        """Remove the node's cgroup (it is empty: the pool drained it)."""
        node = self._nodes[node_id]
        node.mark_released(self._clock())
        await asyncio.to_thread(self._remove_cgroup, node_id)

    def _dirs(self, node_id: str) -> builtins.list[tuple[str, Path]]:
        rel = self.cgroup_parent(node_id).lstrip("/")
        if (CGROUP_ROOT / "memory").is_dir():  # cgroup v1
            return [(c, CGROUP_ROOT / c / rel) for c in ("memory", "cpu", "cpuacct", "pids")]
        return [("unified", CGROUP_ROOT / rel)]

    def _make_cgroup(self, node: Node) -> None:
        try:
            for controller, path in self._dirs(node.id):
                path.mkdir(parents=True, exist_ok=True)
                memory = node.flavor.memory_mb * 2**20
                quota = int(node.flavor.vcpu * 100_000)
                if controller == "memory":
                    (path / "memory.limit_in_bytes").write_text(str(memory))
                elif controller == "cpu":
                    (path / "cpu.cfs_period_us").write_text("100000")
                    (path / "cpu.cfs_quota_us").write_text(str(quota))
                elif controller == "unified":
                    (path / "memory.max").write_text(str(memory))
                    (path / "cpu.max").write_text(f"{quota} 100000")
        except OSError as exc:
            if self.enforced:
                log.warning("node cgroups not enforced (%s): bookkeeping only", exc)
            self.enforced = False

    def _remove_cgroup(self, node_id: str) -> None:
        for _, path in self._dirs(node_id):
            with contextlib.suppress(OSError):
                path.rmdir()

    def cleanup(self) -> None:
        """Remove this owner's node cgroups that are empty (after a crash too)."""
        rel = f"nimbus/{self._owner}"
        roots = [CGROUP_ROOT / c / rel for c in ("memory", "cpu", "cpuacct", "pids")]
        roots.append(CGROUP_ROOT / rel)
        for root in roots:
            if root.is_dir():
                for child in root.iterdir():
                    if child.is_dir():
                        with contextlib.suppress(OSError):
                            child.rmdir()
                with contextlib.suppress(OSError):
                    root.rmdir()


def host_memory_mb() -> int:
    """This machine's physical memory in MB."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)


@dataclass(frozen=True)
class NodePoolConfig:
    """Bounds and choices of the node pool."""

    flavors: tuple[Flavor, ...]
    min_nodes: int = 1
    max_nodes: int = 4
    consolidate_below: float = 0.5  # utilisation under which a node is a drain candidate
    min_node_age_s: float = 60.0  # do not consolidate a node younger than this


class NodePool:
    """Places containers onto nodes and grows or shrinks the pool of nodes."""

    def __init__(
        self,
        provider: PoolProvider,
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
        self._where: dict[str, str] = {}  # container -> node
        self.last_needed: int | None = None  # the planner's latest count

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

    def _views(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.state is NodeState.READY]

    def _try_place(self, container: str, demand: Vector) -> Node | None:
        chosen = self._policy.place(demand, [n.view() for n in self._views()])
        if chosen is None:
            return None
        node = self.nodes[chosen]
        node.allocate(container, demand, self._limits)
        self._where[container] = node.id
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
            if getattr(self.provider, "unplaced_ok", False):
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

    async def _refresh(self) -> None:
        """Re-read the provider's nodes (a cluster may have gained one), keeping our books."""
        for node in await self.provider.list():
            known = self.nodes.get(node.id)
            if known is None:
                self.nodes[node.id] = node
            elif node.state is NodeState.DRAINING and known.state is NodeState.READY:
                known.drain()

    def free(self, container: str) -> None:
        """The container is gone: give its resources back."""
        node_id = self._where.pop(container, None)
        if node_id is not None and node_id in self.nodes:
            self.nodes[node_id].free(container)

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

    def gauges(self) -> list[tuple[str, str, float, float]]:
        """(node, resource, allocated, capacity) for metrics."""
        out = []
        for node in self.nodes.values():
            vcpu, memory = node.allocated
            out.append((node.id, "vcpu", float(vcpu), float(node.flavor.vcpu)))
            out.append((node.id, "memory_mb", float(memory), float(node.flavor.memory_mb)))
        return out
