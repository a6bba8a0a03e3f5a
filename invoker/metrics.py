"""Prometheus series about invocations and containers, on a registry passed in.

Tenant and function labels are capped: past `label_cap` distinct pairs the rest are
counted under `_other`, so a tenant deploying thousands of functions cannot blow up the
scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from invoker.api import FunctionSpec, InvokeResult, Status
from invoker.nodes.migration import MigrationRecord, MigrationState

OTHER = "_other"
INFLATE_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 0.1, 1)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class LabelCap:
    """Admits the first `cap` distinct (tenant, function) pairs; the rest become `_other`."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, tenant: str, function: str) -> tuple[str, str]:
        pair = (tenant, function)
        if pair in self._seen:
            return pair
        if len(self._seen) < self._cap:
            self._seen.add(pair)
            return pair
        return (OTHER, OTHER)


class _Gauges(Collector):
    """Gauges computed at scrape time from live state (containers, nodes, queue)."""

    def __init__(
        self,
        containers: Callable[[], Mapping[str, int]],
        nodes: Callable[[], list[tuple[str, str, float, float]]],
        queue_depth: Callable[[], int],
        packing: Callable[[], tuple[int, int | None]],
        memory: Callable[[], list[tuple[str, float, float, float, float]]],
        heat: Callable[[], list[tuple[str, float, float]]],
    ) -> None:
        self._heat = heat
        self._containers = containers
        self._nodes = nodes
        self._queue_depth = queue_depth
        self._packing = packing
        self._memory = memory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(
            "nimbus_containers", "Function containers by state", labels=["state"]
        )
        for state, count in sorted(self._containers().items()):
            by_state.add_metric([state], count)
        yield by_state
        allocated = GaugeMetricFamily(
            "nimbus_node_allocated", "Resources allocated on a node", labels=["node", "resource"]
        )
        capacity = GaugeMetricFamily(
            "nimbus_node_capacity", "Resources a node offers", labels=["node", "resource"]
        )
        for node, resource, used, total in self._nodes():
            allocated.add_metric([node, resource], used)
            capacity.add_metric([node, resource], total)
        yield allocated
        yield capacity
        yield from self._memory_families()
        hot = GaugeMetricFamily("nimbus_node_hot", "1 while a node is a hot spot", labels=["node"])
        cpu = GaugeMetricFamily(
            "nimbus_node_cpu_pressure",
            "vCPUs busy (from the node cgroup's CPU time) over the node's vCPUs",
            labels=["node"],
        )
        for node, is_hot, pressure in self._heat():
            hot.add_metric([node], is_hot)
            cpu.add_metric([node], pressure)
        yield hot
        yield cpu
        yield GaugeMetricFamily(
            "nimbus_queue_depth", "Async invocations waiting to run", value=self._queue_depth()
        )
        ready, needed = self._packing()
        yield GaugeMetricFamily("nimbus_nodes_ready", "Nodes taking containers", value=ready)
        if needed is not None:  # unknown when ready nodes differ in size
            yield GaugeMetricFamily(
                "nimbus_nodes_needed",
                "Nodes a fresh packing of the ready nodes' containers needs",
                value=needed,
            )

    def _memory_families(self) -> Iterator[GaugeMetricFamily]:
        """Per node: resident memory (limits now, deflated idle containers counted at their
        deflated size), the overcommit ratio (full limits / memory) and its cap, pressure."""
        families = (
            ("nimbus_node_memory_resident_mb", "Memory the containers' limits hold now"),
            ("nimbus_node_memory_overcommit_ratio", "Full memory limits over node memory"),
            ("nimbus_node_memory_overcommit_cap", "The admin's cap on that ratio"),
            ("nimbus_node_memory_pressure", "Resident memory over node memory"),
        )
        out = [GaugeMetricFamily(name, text, labels=["node"]) for name, text in families]
        for node, *values in self._memory():
            for family, value in zip(out, values, strict=True):
                family.add_metric([node], value)
        yield from out


class InvokerMetrics:
    """Counters and histograms the invoker moves on every call."""

    def __init__(self, registry: CollectorRegistry, *, label_cap: int = 200) -> None:
        self.registry = registry
        self._cap = LabelCap(label_cap)
        self._children: dict[tuple[str, str, Status], tuple[Counter, Histogram | None]] = {}
        self.invocations = Counter(
            "nimbus_invocations",
            "Finished invocations",
            ["tenant", "function", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "nimbus_invocation_duration_seconds",
            "Time inside the function",
            ["tenant", "function"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.cold_starts = Counter(
            "nimbus_cold_starts",
            "Calls that started a container",
            ["tenant", "function"],
            registry=registry,
        )
        self.init_duration = Histogram(
            "nimbus_init_duration_seconds",
            "Container start + /init of cold starts",
            ["tenant", "function"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.balloon_resizes = Counter(
            "nimbus_balloon_resizes",
            "Idle containers' memory limits changed (deflated, or given room back)",
            registry=registry,
        )
        self.balloon_inflate = Histogram(
            "nimbus_balloon_inflate_seconds",
            "Inflating a deflated container before a call (admission + limit write)",
            buckets=INFLATE_BUCKETS,
            registry=registry,
        )
        self.overcommit_evictions = Counter(
            "nimbus_overcommit_evictions",
            "Idle containers evicted so a deflated one could inflate for a call",
            registry=registry,
        )
        self.overcommit_elsewhere = Counter(
            "nimbus_overcommit_elsewhere",
            "Calls sent elsewhere: their container's node could not hold it inflated",
            registry=registry,
        )

        self.migrations = Counter(
            "nimbus_migrations",
            "Live migrations of warm containers, by why and how they ended",
            ["reason", "state"],
            registry=registry,
        )
        self.migration_downtime = Histogram(
            "nimbus_migration_downtime_seconds",
            "Time no container could serve the function during a migration",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.migration_duration = Histogram(
            "nimbus_migration_duration_seconds",
            "A migration from its first step to the source's removal",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.migration_init = Histogram(
            "nimbus_migration_init_seconds",
            "Starting and loading the replacement on the target node",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.migration_cpu = Counter(
            "nimbus_migration_cpu_seconds",
            "CPU time spent on migrations, at the source and at the target",
            ["side"],
            registry=registry,
        )
        self.migration_bytes = Counter(
            "nimbus_migration_bytes_moved",
            "Bytes a migration moved (the code sent to the replacement, an image copied)",
            registry=registry,
        )

    def _children_of(self, key: tuple[str, str, Status]) -> tuple[Counter, Histogram | None]:
        """A call's count and duration series; a platform error has no duration (the
        function never ran), and no duration series is made for it."""
        tenant, function, status = key
        count = self.invocations.labels(tenant, function, status.value)
        if status is Status.PLATFORM_ERROR:
            return count, None
        return count, self.duration.labels(tenant, function)

    def migrated(self, record: MigrationRecord) -> None:
        """Count one finished migration and its measured cost."""
        self.migrations.labels(record.reason, record.state.value).inc()
        if record.state is not MigrationState.DONE:
            return
        cost = record.cost
        self.migration_downtime.observe(cost.downtime_s)
        self.migration_init.observe(cost.init_s)
        if record.duration_s is not None:
            self.migration_duration.observe(record.duration_s)
        self.migration_cpu.labels("source").inc(cost.cpu_source_s)
        self.migration_cpu.labels("target").inc(cost.cpu_target_s)
        self.migration_bytes.inc(cost.bytes_moved)

    def watch(
        self,
        containers: Callable[[], Mapping[str, int]],
        nodes: Callable[[], list[tuple[str, str, float, float]]] = list,
        queue_depth: Callable[[], int] = lambda: 0,
        packing: Callable[[], tuple[int, int | None]] = lambda: (0, None),
        memory: Callable[[], list[tuple[str, float, float, float, float]]] = list,
        heat: Callable[[], list[tuple[str, float, float]]] = list,
    ) -> None:
        """Register the scrape-time gauges; `memory` gives per node (id, resident MB,
        overcommit ratio, its cap, pressure), as `NodePool.memory_gauges` does; `heat`
        per node (id, 1.0 if hot else 0.0, CPU pressure), as `HotSpots.gauges` does."""
        self.registry.register(_Gauges(containers, nodes, queue_depth, packing, memory, heat))

    def observe(self, spec: FunctionSpec, result: InvokeResult) -> None:
        """Count one finished call."""
        key = (spec.tenant, spec.name, result.status)
        # The labelled children, kept: `labels()` takes a lock and builds a tuple on every
        # call. Keyed by the labels they carry, so no more of them than the series
        # themselves: a pair past the cap (`_other`) is looked up under its capped labels.
        children = self._children.get(key)
        if children is None:
            tenant, function = self._cap(spec.tenant, spec.name)
            key = (tenant, function, result.status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = self._children_of(key)
        else:
            tenant, function = spec.tenant, spec.name
        count, duration = children
        count.inc()
        if duration is not None:
            duration.observe(result.duration_ms / 1000)
        if result.cold_start:
            self.cold_starts.labels(tenant, function).inc()
            self.init_duration.labels(tenant, function).observe(result.init_ms / 1000)
