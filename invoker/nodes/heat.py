"""Hot spots at run time: each node's measured pressure, sampled, tracked with hysteresis.

`HotSpots.sample` reads each node's CPU counter and memory in use from its provider (the
local provider's node cgroup: `cpuacct.usage` / `cpu.stat`, `memory.usage_in_bytes` less
inactive page cache), turns them into pressures (CPU: the counter's delta over the
interval times the node's vCPUs; memory: in use over the node's memory) and feeds the
fuller of the two to the pure `hotspot.track`. Where the provider reads nothing, the books
stand in (allocated vCPU and resident memory over capacity). The decision of what to move
is `hotspot.plan_mitigation`'s; the invoker's maintenance loop carries it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from invoker.nodes.hotspot import Heat, HotSpotConfig, track
from invoker.nodes.model import Node
from invoker.nodes.node_pool import NodePool
from invoker.nodes.placement import NodeState, Vector
from invoker.providers.base import NodeUsage


@dataclass(frozen=True)
class Sample:
    """One node's measured use at one time."""

    at: float
    usage: NodeUsage


class HotSpots:
    """Samples the nodes' pressure and remembers which are hot."""

    def __init__(
        self, nodes: NodePool, config: HotSpotConfig, *, clock: Callable[[], float]
    ) -> None:
        self._nodes = nodes
        self.config = config
        self._clock = clock
        self.read: Callable[[str], NodeUsage | None] = nodes.provider.usage
        """Where a node's use is read (a test may put a fake here)."""
        self._last: dict[str, Sample] = {}
        self.heat: dict[str, Heat] = {}
        self.load: dict[str, Vector] = {}
        """Each node's measured (vCPUs busy, memory MB in use) at the last sample."""

    def sample(self) -> dict[str, Heat]:
        """Read every ready node once and update its heat; returns the heat by node."""
        now = self._clock()
        live = {n.id: n for n in self._nodes.nodes.values() if n.state is NodeState.READY}
        for node in live.values():
            load = self._measure(node, now)
            if load is None:
                continue  # the first reading: a rate needs two
            self.load[node.id] = load
            pressure = max(
                load[0] / node.flavor.vcpu if node.flavor.vcpu else 0.0,
                load[1] / node.flavor.memory_mb if node.flavor.memory_mb else 0.0,
            )
            self.heat[node.id] = track(self.heat.get(node.id), pressure, now, self.config)
        for gone in [n for n in self.heat if n not in live]:
            self.heat.pop(gone, None)
            self.load.pop(gone, None)
            self._last.pop(gone, None)
        return dict(self.heat)

    def _measure(self, node: Node, now: float) -> Vector | None:
        usage = self.read(node.id)
        if usage is None:  # nothing measured: the books stand in
            return (node.allocated[0], float(node.resident_mb))
        last = self._last.get(node.id)
        self._last[node.id] = Sample(now, usage)
        if last is None or now <= last.at:
            return None
        busy = max(0.0, usage.cpu_s - last.usage.cpu_s) / (now - last.at)
        return (busy, usage.memory_mb)

    def acted(self, node_id: str) -> None:
        """Containers are moving off the node: it must stay hot a whole window again
        before anything more moves (its measured load lags the moves)."""
        self.heat[node_id] = Heat()

    def gauges(self) -> list[tuple[str, float, float]]:
        """(node, 1.0 if hot else 0.0, CPU pressure) for metrics."""
        out = []
        for node_id, heat in self.heat.items():
            node = self._nodes.nodes.get(node_id)
            busy = self.load.get(node_id, (0.0,))[0]
            vcpu = node.flavor.vcpu if node is not None else 0.0
            out.append((node_id, 1.0 if heat.hot else 0.0, busy / vcpu if vcpu else 0.0))
        return out

    def hot(self) -> set[str]:
        """The nodes hot now."""
        return {node for node, heat in self.heat.items() if heat.hot}
