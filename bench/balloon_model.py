"""The ballooning replay's model: memory figures, busy periods, busy demand and the pool replay.

Used by `balloon_replay.py` (which documents the model and prints the figures); the trace
itself is loaded by `keepalive.load_trace`. The replay drives the real policies:
`invoker.containers.balloon` (when an idle container deflates, to what) and
`invoker.nodes.overcommit` (admission at deflated size, eviction, cold placement).
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keepalive import MINUTE_S, Function, percentile

from invoker.containers.balloon import BalloonConfig, BalloonView, Deflate, decide, target_mb
from invoker.nodes.model import Flavor, Node, demand_for
from invoker.nodes.overcommit import (
    Admit,
    NodeMemory,
    OvercommitLimits,
    Resident,
    admit_call,
    place_cold,
)
from invoker.nodes.placement import NodeState, PlacementPolicy, placement_policy_by_name
from invoker.providers.select import effective_placement
from invoker.settings import InvokerSettings

KEEP_ALIVE_S = 600.0
STEP_MB = 128
LAMBDA_SIZES_MB = (128, 256, 512, 1024, 1536, 2048, 3008)
AZURE_SIZES_MB = (1536, 1792, 3584, 7168, 14336)
"""Azure Functions' memory per instance (the service limits table of "Azure Functions scale
and hosting", learn.microsoft.com/azure/azure-functions/functions-scale): 1.5 GB on the
Consumption plan, where the 2019 trace's apps ran unless they needed more; 1.75-14 GB on the
Dedicated (App Service) and 3.5-14 GB on the Premium plan."""
PACK = "pack"
"""The replay's own rule before it placed as the platform does: `place_cold` alone (the
fullest node by deflated memory that needs no eviction, else the cheapest evictions)."""
Placer = Callable[[Sequence[NodeMemory], int, OvercommitLimits], tuple[str, Admit] | None]


def platform_default(name: str) -> str | float | None:
    """The default of one of the platform's settings (`InvokerSettings`)."""
    default = next(f.default for f in dataclasses.fields(InvokerSettings) if f.name == name)
    assert isinstance(default, str | float | None)
    return default


@dataclass(frozen=True)
class PlatformPlacement:
    """Where the platform starts a new container: `NodePool.place` (the configured placement
    policy over ready nodes, memory as resident, within the overcommit cap), and when no node
    has room, `lifecycle._place`'s fallback: the idle containers `place_cold` picks are
    evicted and the policy places again. Each node's books are the platform's `Node`, its
    CPU the `demand_for` share of every container's full memory."""

    policy: PlacementPolicy
    vcpu: float  # each node's vCPUs

    def __call__(
        self, nodes: Sequence[NodeMemory], memory_mb: int, limits: OvercommitLimits
    ) -> tuple[str, Admit] | None:
        """The node and the evictions for a new container of `memory_mb` (None: no room)."""
        chosen = self.choose(nodes, memory_mb, limits)
        if chosen is not None:
            return chosen, Admit()
        room = place_cold(nodes, memory_mb, limits)
        if room is None or not room[1].evict:
            return None
        after = [n.replace(drop=room[1].evict) for n in nodes]
        chosen = self.choose(after, memory_mb, limits)
        return None if chosen is None else (chosen, room[1])

    def choose(
        self, nodes: Sequence[NodeMemory], memory_mb: int, limits: OvercommitLimits
    ) -> str | None:
        """The policy's node among those with room as they are (no eviction)."""
        demand = demand_for(memory_mb)
        books = [self.books(n) for n in nodes]
        views = [
            b.resident_view() for b in books if b.fits(demand, self.policy.limits, limits.max_ratio)
        ]
        return self.policy.place(demand, views)

    def books(self, node: NodeMemory) -> Node:
        """The node as the platform's node pool keeps it."""
        flavor = Flavor("replay", self.vcpu, node.capacity_mb, 0.0)
        allocations = {c.id: demand_for(c.memory_mb) for c in node.containers}
        deflated = {c.id: c.limit_mb for c in node.containers if c.limit_mb < c.memory_mb}
        return Node(node.id, flavor, NodeState.READY, allocations, deflated=deflated)


@dataclass(frozen=True)
class Placement:
    """How the replay places new containers: `pack` (the old rule) or a platform policy by
    name, with the platform's default CPU overcommit and hot-spot threshold."""

    name: str = str(platform_default("placement_policy"))
    vcpu_per_gib: float = 0.5

    def placer(self, node_mb: int, overcommit: float) -> Placer:
        """A fresh placer for one replay (some policies keep state: next-fit, random-fit);
        `auto` is what the platform runs at this overcommit (`effective_placement`)."""
        if self.name == PACK:
            return place_cold
        name = effective_placement(self.name, overcommit)
        cpu = platform_default("cpu_overcommit")
        hot = platform_default("hot_spot_threshold")
        assert isinstance(cpu, float) and (hot is None or isinstance(hot, float))
        policy = placement_policy_by_name(name, cpu_overcommit=cpu, hot_spot_threshold=hot)
        return PlatformPlacement(policy, self.vcpu_per_gib * node_mb / 1024)


END, DEFLATE, START, EXPIRE = range(4)  # event order at equal times


@dataclass(frozen=True)
class Period:
    """One busy period of a function: [start, end) seconds, and the calls it serves."""

    start: float
    end: float
    calls: int


@dataclass(frozen=True)
class Sizing:
    """A function's memory: the limit a call needs and its idle working set."""

    memory_mb: int
    working_set_mb: float


def configured_limit(peak_mb: float, factor: float, sizes: Sequence[int] | None) -> int:
    """The `memory_mb` a user configures for a function that peaks at `peak_mb`.

    The smallest of `sizes` at least `factor` x peak (`sizes` None: any 128 MB step). When
    no size is that large, the largest size, but never below the peak rounded up to 128 MB
    (a function is never given less than it was seen to use).
    """
    floor = math.ceil(peak_mb / STEP_MB) * STEP_MB
    want = factor * peak_mb
    if sizes is None:
        return max(floor, math.ceil(want / STEP_MB) * STEP_MB)
    fitting = [s for s in sorted(sizes) if s >= want]
    return fitting[0] if fitting else max(max(sizes), floor)


def memory_figures(
    path: Path, ws_column: str, factor: float = 1.0, sizes: Sequence[int] | None = None
) -> dict[str, Sizing]:
    """Per app: memory_mb from pct100 (`configured_limit`), working set from `ws_column`."""
    out = {}
    with open(path / "100_mem.csv", newline="") as f:
        for row in csv.DictReader(f):
            limit = configured_limit(float(row["AverageAllocatedMb_pct100"]), factor, sizes)
            out[row["HashApp"]] = Sizing(limit, float(row[ws_column]))
    return out


def deflated_mb(s: Sizing, config: BalloonConfig) -> int:
    """The limit an idle container of this sizing holds once ballooned (as `decide` does:
    no deflation when it would free less than `min_saving_mb`)."""
    target = target_mb(s.memory_mb, s.working_set_mb, config)
    return target if s.memory_mb - target >= max(1, config.min_saving_mb) else s.memory_mb


def mean_deflated_ratio(sizing: Sequence[Sizing], config: BalloonConfig) -> float:
    """Mean over functions of deflated / full limit."""
    return sum(deflated_mb(s, config) / s.memory_mb for s in sizing) / len(sizing)


def busy_periods(path: Path, functions: list[Function], seed: int) -> list[list[Period]]:
    """Each function's busy periods, from its calls per minute and mean duration."""
    with open(path / "100_run.csv", newline="") as f:
        mean_s = {r["HashFunction"]: float(r["Average"]) / 1000.0 for r in csv.DictReader(f)}
    rng = random.Random(seed)
    out = []
    for fn in functions:
        periods = []
        for minute, n in enumerate(fn.calls_per_minute):
            if n == 0:
                continue
            busy = min(MINUTE_S, n * mean_s[fn.key])
            offset = rng.uniform(0.0, MINUTE_S - busy)
            start = minute * MINUTE_S + offset
            periods.append(Period(start, start + busy, n))
        out.append(periods)
    return out


@dataclass(frozen=True)
class Demand:
    """Busy memory the trace asks for, whatever the pool: every busy period at full size."""

    peak_mb: int
    over_starts: int  # busy periods that start while busy memory (theirs included) > pool
    over_s: float  # seconds of the day in which busy memory > pool


def busy_demand(periods: list[list[Period]], sizing: Sequence[Sizing], pool_mb: int) -> Demand:
    """Sweep the busy periods: peak busy memory, and how often it alone exceeds the pool.

    Ballooning only shrinks idle containers, so no overcommit policy can serve a start that
    this demand puts over the pool: it is cold (rejected) with or without ballooning.
    """
    edges = sorted(
        (t, kind, sizing[k].memory_mb)
        for k, ps in enumerate(periods)
        for p in ps
        for t, kind in ((p.start, 1), (p.end, 0))  # ends first at equal times
    )
    busy = peak = over_starts = 0
    over_s, last = 0.0, 0.0
    for t, kind, mb in edges:
        if busy > pool_mb:
            over_s += t - last
        last = t
        busy += mb if kind else -mb
        peak = max(peak, busy)
        over_starts += kind and busy > pool_mb
    return Demand(peak, over_starts, over_s)


@dataclass
class Box:
    """A warm container in the replay."""

    fn: int
    node: int
    memory_mb: int
    limit_mb: int
    busy: bool
    last_used: float
    generation: int


@dataclass
class Outcome:
    """What one replay saw."""

    label: str
    calls: int = 0
    colds: int = 0
    evictions: int = 0
    refused_inflations: int = 0
    rejected_starts: int = 0
    busy_bound: int = 0  # rejected starts where the pool's busy memory + theirs > the pool
    failed_for_memory: int = 0
    deflations: int = 0
    peak_ratio: float = 0.0
    cold_by_app: dict[str, list[int]] = field(default_factory=dict)

    @property
    def cold_pct(self) -> float:
        """Cold busy periods as a percentage of calls."""
        return 100.0 * self.colds / self.calls

    @property
    def p75_app_cold_pct(self) -> float:
        """75th percentile across apps of cold-start % (as keepalive.py reports it)."""
        return percentile((100.0 * c / n for n, c in self.cold_by_app.values() if n), 75)


def replay(
    label: str,
    functions: list[Function],
    periods: list[list[Period]],
    sizing: Sequence[Sizing],
    nodes: int,
    node_mb: int,
    balloon: BalloonConfig | None,
    limits: OvercommitLimits,
    placement: Placement,
) -> Outcome:
    """One run of the pool over the whole day."""
    out = Outcome(label)
    # Without ballooning nothing is admitted at a deflated size: the platform's overcommit
    # is off then (it needs `balloon`), and so `auto` is what it would place with.
    place = placement.placer(node_mb, limits.max_ratio if balloon is not None else 1.0)
    boxes: dict[int, Box] = {}
    on_node: list[set[int]] = [set() for _ in range(nodes)]
    events: list[tuple[float, int, int, int, int]] = []  # time, kind, fn, period/gen, seq
    for k, ps in enumerate(periods):
        for j, p in enumerate(ps):
            heapq.heappush(events, (p.start, START, k, j, 0))
    generation = busy_mb = 0

    def memory(n: int) -> NodeMemory:
        residents = tuple(
            Resident(
                str(f),
                boxes[f].memory_mb,
                boxes[f].limit_mb,
                boxes[f].busy,
                boxes[f].last_used,
            )
            for f in on_node[n]
        )
        return NodeMemory(str(n), node_mb, residents)

    def remove(f: int) -> None:
        on_node[boxes.pop(f).node].discard(f)

    def evict(ids: tuple[str, ...]) -> None:
        out.evictions += len(ids)
        for cid in ids:
            remove(int(cid))

    while events:
        now, kind, k, j, gen = heapq.heappop(events)
        box = boxes.get(k)
        if kind == END and box is not None:
            box.busy, box.last_used = False, now
            busy_mb -= box.memory_mb
            generation += 1
            box.generation = generation
            if balloon is not None:
                heapq.heappush(events, (now + balloon.idle_grace_s, DEFLATE, k, 0, generation))
            heapq.heappush(events, (now + KEEP_ALIVE_S, EXPIRE, k, 0, generation))
        elif kind == DEFLATE and box is not None and box.generation == gen and balloon:
            idle_since = None if box.busy else box.last_used
            view = BalloonView(box.memory_mb, box.limit_mb, sizing[k].working_set_mb, idle_since)
            resize = decide(view, now, balloon)
            if isinstance(resize, Deflate):
                box.limit_mb = resize.limit_mb
                out.deflations += 1
        elif kind == EXPIRE and box is not None and box.generation == gen and not box.busy:
            remove(k)
        elif kind == START:
            p = periods[k][j]
            app = functions[k].app
            stats = out.cold_by_app.setdefault(app, [0, 0])
            out.calls += p.calls
            stats[0] += p.calls
            need = sizing[k].memory_mb
            if box is not None:
                answer = admit_call(memory(box.node), str(k), limits)
                if isinstance(answer, Admit):
                    evict(answer.evict)
                    box.limit_mb, box.busy = box.memory_mb, True
                else:
                    out.refused_inflations += 1
                    remove(k)
                    box = None
            if box is None:
                stats[1] += 1
                out.colds += 1
                placed = place([memory(n) for n in range(nodes)], need, limits)
                if placed is None:
                    out.rejected_starts += 1
                    out.busy_bound += busy_mb + need > nodes * node_mb
                    continue
                node, admit = int(placed[0]), placed[1]
                evict(admit.evict)
                box = Box(k, node, need, need, True, now, 0)
                boxes[k] = box
                on_node[node].add(k)
            busy_mb += need
            generation += 1  # pending deflations and expiries of the last idle spell are void
            box.generation = generation
            heapq.heappush(events, (p.end, END, k, 0, 0))
            state = memory(box.node)
            if box.limit_mb != box.memory_mb or state.resident_mb > state.capacity_mb:
                out.failed_for_memory += p.calls
            out.peak_ratio = max(out.peak_ratio, state.ratio)
    return out


def run_pair(
    functions: list[Function],
    periods: list[list[Period]],
    sizing: Sequence[Sizing],
    nodes: int,
    node_mb: int,
    limits: OvercommitLimits,
    placement: Placement,
) -> tuple[Outcome, Outcome]:
    """The same pool without and with ballooning."""
    args = (functions, periods, sizing, nodes, node_mb)
    plain = replay("full size", *args, None, limits, placement)
    deflated = replay("ballooning", *args, BalloonConfig(), limits, placement)
    return plain, deflated
