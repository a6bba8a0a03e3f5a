"""This machine split into VM nodes: each node a cgroup whose limits the kernel enforces."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from invoker.nodes.model import Flavor, NoCapacity, Node
from invoker.nodes.placement import NodeState
from invoker.providers.base import NodeUsage, ResizeRefused

log = logging.getLogger("nimbus.nodes")

CGROUP_ROOT = Path("/sys/fs/cgroup")


class LocalProvider:
    """This machine split into VM nodes, each a cgroup whose limits the kernel enforces.

    A node is a cgroup (`/nimbus/<owner>/<node>`) with the flavor's memory limit and CPU
    quota; containers placed on it run with that cgroup as their parent, so together they
    can never take more than the node has. Where cgroups cannot be written (not root, an
    unknown layout) nodes still exist, enforced by bookkeeping only, and `enforced` says so.
    """

    name = "local"
    unplaced_ok = False

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

    async def resize(self, node: Node, vcpu: float, memory_mb: int) -> None:
        """Write the node's new limits into its cgroup (the caller resizes the books)."""
        if not self.enforced:
            return
        try:
            await asyncio.to_thread(self._write_limits, node.id, vcpu, memory_mb)
        except OSError as exc:  # v1 answers EBUSY when it cannot reclaim down to the limit
            raise ResizeRefused(f"node {node.id}'s cgroup refused the new limits: {exc}") from exc

    def _make_cgroup(self, node: Node) -> None:
        try:
            for _, path in self._dirs(node.id):
                path.mkdir(parents=True, exist_ok=True)
            self._write_limits(node.id, node.flavor.vcpu, node.flavor.memory_mb)
        except OSError as exc:
            if self.enforced:
                log.warning("node cgroups not enforced (%s): bookkeeping only", exc)
            self.enforced = False

    def _write_limits(self, node_id: str, vcpu: float, memory_mb: int) -> None:
        memory = memory_mb * 2**20
        quota = int(vcpu * 100_000)
        for controller, path in self._dirs(node_id):
            if controller == "memory":
                (path / "memory.limit_in_bytes").write_text(str(memory))
            elif controller == "cpu":
                (path / "cpu.cfs_period_us").write_text("100000")
                (path / "cpu.cfs_quota_us").write_text(str(quota))
            elif controller == "unified":
                (path / "memory.max").write_text(str(memory))
                (path / "cpu.max").write_text(f"{quota} 100000")

    def usage(self, node_id: str) -> NodeUsage | None:
        """The node cgroup's CPU counter and memory in use (inactive page cache left out);
        None where the files cannot be read. A few sysfs reads: microseconds, inline."""
        dirs = dict(self._dirs(node_id))
        try:
            if "unified" in dirs:
                path = dirs["unified"]
                stat = _fields(path / "cpu.stat")
                cpu = stat["usage_usec"] / 1e6
                used = int((path / "memory.current").read_text())
                inactive = _fields(path / "memory.stat").get("inactive_file", 0)
            else:
                cpu = int((dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
                used = int((dirs["memory"] / "memory.usage_in_bytes").read_text())
                inactive = _fields(dirs["memory"] / "memory.stat").get("total_inactive_file", 0)
        except (OSError, ValueError, KeyError):
            return None
        return NodeUsage(cpu, max(0, used - inactive) / 2**20)

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


def _fields(path: Path) -> dict[str, int]:
    """A cgroup `key value` file (cpu.stat, memory.stat) as numbers."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def host_memory_mb() -> int:
    """This machine's physical memory in MB."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
