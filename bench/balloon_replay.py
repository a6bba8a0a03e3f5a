"""Ballooning replay: cold starts and evictions with and without ballooning, same node memory.

Replays the Azure Functions 2019 sample (`azure-functions-2019`, loaded by `keepalive.py`)
on a fixed, memory-bound pool of nodes through the real policies: `invoker.containers.balloon`
(when an idle container deflates, to what) and `invoker.nodes.overcommit` (a node admits idle
containers at their deflated size; a call starts only when its full memory fits, evicting idle
containers first, lowest keep value = least recently used first, else going cold elsewhere).

Model (one container per function, as the data README's replay):
- A minute's calls run back to back on the function's container: one busy period of
  min(60 s, calls x mean duration) (100_run.csv `Average`), starting at a seeded random
  offset in the minute (at 0 when it fills the minute). No call runs deflated.
- A container idle for the balloon's grace (2 s) deflates; it is kept warm 10 minutes after
  its last call (fixed keep-alive), unless evicted for memory first.
- Memory per function, from 100_mem.csv (per app; here one function per app):
  `memory_mb`, the limit a call needs = the app's `AverageAllocatedMb_pct100` rounded up to
  a 128 MB step (the smallest Lambda-style size that never ran out in the data); the idle
  working set = its `AverageAllocatedMb_pct50` (the samples span each app's whole life,
  idle most of it, so the median sample is the trace's closest figure to an idle
  container's footprint; pct1 and pct95 are shown as sensitivity).
- A start with no warm container is a cold start (counted once per busy period, as
  keepalive.py counts one cold call per minute); a warm container that cannot inflate on
  its node is dropped and the call goes cold elsewhere. A start that fits on no node even
  after evicting every idle container there is rejected (counted cold, and reported).
- "Failed for memory": a call that would start without its full memory resident (0 by
  construction of `overcommit`, checked on every start).

    .venv/bin/python bench/balloon_replay.py [../shared/data/azure-functions-2019]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from keepalive import DEFAULT_DATA, MINUTE_S, Function, load_trace, percentile

from invoker.containers.balloon import BalloonConfig, BalloonView, Deflate, decide, target_mb
from invoker.nodes.overcommit import (
    Admit,
    NodeMemory,
    OvercommitLimits,
    Resident,
    admit_call,
    place_cold,
)

KEEP_ALIVE_S = 600.0
STEP_MB = 128
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


def memory_figures(path: Path, ws_column: str) -> dict[str, Sizing]:
    """Per app: memory_mb from pct100 (rounded up to 128 MB), working set from `ws_column`."""
    out = {}
    with open(path / "100_mem.csv", newline="") as f:
        for row in csv.DictReader(f):
            limit = math.ceil(float(row["AverageAllocatedMb_pct100"]) / STEP_MB) * STEP_MB
            out[row["HashApp"]] = Sizing(limit, float(row[ws_column]))
    return out


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
    rejected_calls: int = 0
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
    sizing: list[Sizing],
    nodes: int,
    node_mb: int,
    balloon: BalloonConfig | None,
    limits: OvercommitLimits,
) -> Outcome:
    """One run of the pool over the whole day."""
    out = Outcome(label)
    boxes: dict[int, Box] = {}
    on_node: list[set[int]] = [set() for _ in range(nodes)]
    events: list[tuple[float, int, int, int, int]] = []  # time, kind, fn, period/gen, seq
    for k, ps in enumerate(periods):
        for j, p in enumerate(ps):
            heapq.heappush(events, (p.start, START, k, j, 0))
    generation = 0

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
                placed = place_cold([memory(n) for n in range(nodes)], need, limits)
                if placed is None:
                    out.rejected_calls += p.calls
                    continue
                node, admit = int(placed[0]), placed[1]
                evict(admit.evict)
                box = Box(k, node, need, need, True, now, 0)
                boxes[k] = box
                on_node[node].add(k)
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
    sizing: list[Sizing],
    nodes: int,
    node_mb: int,
    limits: OvercommitLimits,
) -> tuple[Outcome, Outcome]:
    """The same pool without and with ballooning."""
    plain = replay("full size", functions, periods, sizing, nodes, node_mb, None, limits)
    deflated = replay(
        "ballooning", functions, periods, sizing, nodes, node_mb, BalloonConfig(), limits
    )
    return plain, deflated


def row(label: str, o: Outcome, base: Outcome | None = None) -> str:
    """One table line; the ratio to `base` when given."""
    ratio = f"{o.colds / base.colds:>6.2f}" if base is not None and base.colds else f"{'':>6}"
    return (
        f"  {label:<22} {o.colds:>7,} {o.cold_pct:>7.2f} {ratio} {o.p75_app_cold_pct:>8.2f}"
        f" {o.evictions:>9,} {o.refused_inflations:>8,} {o.rejected_calls:>8,}"
        f" {o.failed_for_memory:>7} {o.peak_ratio:>6.2f}"
    )


HEADER = (
    f"  {'pool / run':<22} {'colds':>7} {'cold %':>7} {'x full':>6} {'p75 app':>8}"
    f" {'evictions':>9} {'refused':>8} {'rejected':>8} {'failed':>7} {'ratio':>6}"
)


def main(argv: list[str] | None = None) -> int:
    """Run the replay and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument(
        "--node-gb", type=float, nargs="*", default=[10.0, 12.0, 14.0, 16.0], help="GiB"
    )
    parser.add_argument("--sensitivity-gb", type=float, default=12.0)
    parser.add_argument("--max-ratio", type=float, default=OvercommitLimits().max_ratio)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = args.data.resolve()
    functions = load_trace(path)
    periods = busy_periods(path, functions, args.seed)
    limits = OvercommitLimits(max_ratio=args.max_ratio)

    def sizes(column: str) -> list[Sizing]:
        figures = memory_figures(path, column)
        return [figures[f.app] for f in functions]

    def pair(
        label: str, sizing: list[Sizing], gb: float, caps: OvercommitLimits
    ) -> tuple[float, int]:
        plain, ball = run_pair(functions, periods, sizing, args.nodes, int(gb * 1024), caps)
        print(row(f"{label} full size", plain))
        print(row(f"{label} ballooning", ball, plain))
        ratio = ball.colds / plain.colds if plain.colds else 1.0
        return ratio, plain.failed_for_memory + ball.failed_for_memory

    sizing = sizes("AverageAllocatedMb_pct50")
    full = sum(s.memory_mb for s in sizing)
    cfg = BalloonConfig()
    deflated = sum(target_mb(s.memory_mb, s.working_set_mb, cfg) for s in sizing)
    print(
        f"Ballooning replay: {len(functions)} functions, {sum(len(p) for p in periods):,}"
        f" busy periods, {sum(sum(f.calls_per_minute) for f in functions):,} calls ({path})"
    )
    print(
        f"memory_mb = pct100 rounded up to {STEP_MB} MB: {full:,} MB in all; deflated to the"
        f" median working set + headroom: {deflated:,} MB ({deflated / full:.2f}x)"
    )
    print(
        f"pool: {args.nodes} nodes, fixed 10 min keep-alive, LRU eviction, balloon grace"
        f" {cfg.idle_grace_s:g} s, headroom max({cfg.headroom_mb} MB,"
        f" {cfg.headroom_fraction:.0%}), overcommit cap {limits.max_ratio:g}, seed {args.seed}"
    )
    free = replay("", functions, periods, sizing, 1, 1 << 30, None, limits)
    print(
        f"unbounded memory (floor): {free.colds:,} cold starts, p75 app cold"
        f" {free.p75_app_cold_pct:.1f} % (README's fixed 10 min: 25.0 %)\n"
    )
    print("By node memory (working set = pct50):")
    print(HEADER)
    ratios = {gb: pair(f"{gb:g} GiB", sizing, gb, limits) for gb in args.node_gb}
    gb = args.sensitivity_gb
    node_mb = int(gb * 1024)
    print(f"\nSensitivity at {gb:g} GiB nodes (x full: to the {gb:g} GiB full-size run above):")
    print(HEADER)
    base = replay("", functions, periods, sizing, args.nodes, node_mb, None, limits)
    variants = [
        (f"ws={c.rsplit('_', 1)[1]}", sizes(c), limits)
        for c in ("AverageAllocatedMb_pct1", "AverageAllocatedMb_pct95")
    ]
    variants.append(("ws=0 (bound)", [Sizing(s.memory_mb, 0.0) for s in sizing], limits))
    variants.append(("cap 1.5", sizing, OvercommitLimits(max_ratio=1.5)))
    for label, variant, caps in variants:
        ball = replay("", functions, periods, variant, args.nodes, node_mb, cfg, caps)
        print(row(f"{label} ballooning", ball, base))
    print("\nTarget: >= 30 % fewer cold starts, 0 calls failed for memory (pct50 working set)")
    for gb, (ratio, failed) in ratios.items():
        verdict = "PASS" if ratio <= 0.7 and failed == 0 else "MISS"
        print(
            f"  {verdict}  {gb:g} GiB nodes: cold starts {ratio:.2f}x of full size,"
            f" {failed} calls failed for memory"
        )
    print(f"replay time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
