"""Ballooning replay: cold starts and evictions with and without ballooning, same node memory.

Replays the Azure Functions 2019 sample (`azure-functions-2019`, loaded by `keepalive.py`)
on a fixed, memory-bound pool of nodes through the real policies: `invoker.containers.balloon`
(when an idle container deflates, to what) and `invoker.nodes.overcommit` (a node admits idle
containers at their deflated size; a call starts only when its full memory fits, evicting idle
containers first, lowest keep value = least recently used first, else going cold elsewhere).
The model and the replay are in `balloon_model.py`.

Model (one container per function, as the data README's replay):
- A minute's calls run back to back on the function's container: one busy period of
  min(60 s, calls x mean duration) (100_run.csv `Average`), starting at a seeded random
  offset in the minute (at 0 when it fills the minute). No call runs deflated.
- A container idle for the balloon's grace (2 s) deflates; it is kept warm 10 minutes after
  its last call (fixed keep-alive), unless evicted for memory first.
- Memory per function, from 100_mem.csv (per app; here one function per app; Azure's
  samples of each app's allocated memory, measured in production over the app's life):
  `memory_mb`, the configured limit a call needs and the platform reserves, is modelled from
  the app's peak `AverageAllocatedMb_pct100`: by default (`--limit-factor 1.0`, no
  `--limit-sizes`) the peak rounded up to a 128 MB step, i.e. users configure exactly their
  peak. Real users configure more than they use (Lambda users pick from fixed sizes, often
  2x their use): `--limit-factor F` asks for F x the peak, and `--limit-sizes` rounds up to
  the smallest of fixed sizes (bare: Lambda's 128, 256, 512, 1024, 1536, 2048, 3008 MB; a
  function whose F x peak exceeds them all gets the largest, never less than its peak).
  The idle working set = `AverageAllocatedMb_pct50` (the samples span each app's whole
  life, idle most of it, so the median sample is the trace's closest figure to an idle
  container's footprint; pct1 and pct95 are shown as sensitivity). It does not grow with F:
  a function uses what it uses, whatever its limit.
- A start with no warm container is a cold start (counted once per busy period, as
  keepalive.py counts one cold call per minute); a warm container that cannot inflate on
  its node is dropped and the call goes cold elsewhere. A start that fits on no node even
  after evicting every idle container there is rejected (counted cold, and reported).
- Accounting check: ballooning only shrinks idle containers. When the busy memory alone
  (every busy container at full size) exceeds the pool, no overcommit can serve the start:
  `busy>pool` counts such rejected starts, and a NOTE gives how often the trace's own busy
  demand exceeds the pool at each node size.
- "Failed for memory": a call that would start without its full memory resident (0 by
  construction of `overcommit`, checked on every start).
- Placement of a new container (`--placement`), by default as the platform does it: the
  configured policy (`InvokerSettings.placement_policy`, `auto`: best-fit for the full-size
  run, worst-fit for the ballooning run, whose overcommit is on; any platform policy by
  name) over the nodes' `Node.resident_view` within the overcommit cap, at the platform's
  default CPU overcommit and hot-spot threshold, each node given `--node-vcpu-per-gib` vCPUs
  (0.5: the small and medium flavors' shape, so CPU never binds before the memory cap); when
  no node has room, `place_cold`'s evictions and the policy again (`lifecycle._place`).
  `pack` is the replay's earlier rule, `place_cold` alone.

Limit-model table: F = 1.0, 1.5, 2.0 (`--table-factors`) with fixed sizes (`--limit-sizes`,
default Lambda's), and Azure's own instance sizes (`--no-azure` leaves them out): 1536 MB,
the Consumption plan's memory per instance, for every app whose peak fits in it, else the
smallest Premium / Dedicated size holding the peak (1.75, 3.5, 7, 14 GB). All at two node
sizes (`--table-gb`, default 16 and 20 GiB: there the pool is memory-bound for the
full-size baseline in every model, x floor > 1, and busy memory alone rarely exceeds it).

    .venv/bin/python bench/balloon_replay.py [../shared/data/azure-functions-2019]
        [--limit-factor 1.0] [--limit-sizes [MB ...]] [--table-gb 16 20]
        [--placement best-fit|worst-fit|...|pack]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from balloon_model import (
    AZURE_SIZES_MB,
    LAMBDA_SIZES_MB,
    PACK,
    STEP_MB,
    Demand,
    Outcome,
    Period,
    Placement,
    Sizing,
    busy_demand,
    busy_periods,
    deflated_mb,
    mean_deflated_ratio,
    memory_figures,
    replay,
    run_pair,
)
from keepalive import DEFAULT_DATA, Function, load_trace

from invoker.containers.balloon import BalloonConfig
from invoker.nodes.overcommit import OvercommitLimits
from invoker.nodes.placement import POLICY_NAMES

TARGET = 0.7  # at least 30 % fewer cold starts than full size


def row(label: str, o: Outcome, base: Outcome | None = None) -> str:
    """One table line; the ratio to `base` when given."""
    ratio = f"{o.colds / base.colds:>6.2f}" if base is not None and base.colds else f"{'':>6}"
    return (
        f"  {label:<22} {o.colds:>7,} {o.cold_pct:>7.2f} {ratio} {o.p75_app_cold_pct:>8.2f}"
        f" {o.evictions:>9,} {o.refused_inflations:>8,} {o.rejected_starts:>8,}"
        f" {o.busy_bound:>9,} {o.failed_for_memory:>7} {o.peak_ratio:>6.2f}"
    )


HEADER = (
    f"  {'pool / run':<22} {'colds':>7} {'cold %':>7} {'x full':>6} {'p75 app':>8}"
    f" {'evictions':>9} {'refused':>8} {'rejected':>8} {'busy>pool':>9} {'failed':>7}"
    f" {'ratio':>6}"
)

TABLE_HEADER = (
    f"  {'limits':<8} {'node':>6} {'x floor':>7} | {'full: cold %':>12} {'p75 app':>7}"
    f" {'evictions':>9} | {'balloon: cold %':>15} {'p75 app':>7} {'evictions':>9}"
    f" {'x full':>6} | {'failed':>6}"
    f" {'busy>pool':>9} {'defl/full':>9}"
)


def limit_model(factor: float, sizes: Sequence[int] | None) -> str:
    """How memory_mb is derived, in words."""
    peak = "pct100" if factor == 1.0 else f"{factor:g} x pct100"
    if sizes is None:
        return f"memory_mb = {peak} rounded up to {STEP_MB} MB"
    return f"memory_mb = smallest of {'/'.join(map(str, sorted(sizes)))} MB >= {peak}"


def busy_note(gb: float, demand: Demand, pool_mb: int) -> str | None:
    """The NOTE for a pool whose busy memory alone exceeds it, else None."""
    if demand.over_starts == 0:
        return None
    return (
        f"  NOTE {gb:g} GiB: busy memory alone (peak {demand.peak_mb / 1024:.1f} GiB) exceeds"
        f" the {pool_mb / 1024:g} GiB pool at {demand.over_starts:,} starts"
        f" ({demand.over_s / 60:.0f} min of the day); ballooning only shrinks idle"
        f" containers, so those starts go cold or are rejected with or without it"
    )


def table_line(
    mode: str, gb: float, floor: Outcome, plain: Outcome, ball: Outcome, ratio: float
) -> str:
    """One line of the limit-model table."""
    return (
        f"  {mode:<8} {gb:>4g}Gi {plain.colds / floor.colds:>7.2f} |"
        f" {plain.cold_pct:>12.3f} {plain.p75_app_cold_pct:>7.1f} {plain.evictions:>9,} |"
        f" {ball.cold_pct:>15.3f} {ball.p75_app_cold_pct:>7.1f} {ball.evictions:>9,}"
        f" {ball.colds / plain.colds:>6.2f} |"
        f" {plain.failed_for_memory + ball.failed_for_memory:>6}"
        f" {ball.busy_bound:>9,} {ratio:>9.2f}"
    )


def describe(placement: Placement) -> str:
    """The placement rule, in words."""
    if placement.name == PACK:
        return "pack (place_cold alone: the fullest node by deflated memory needing no eviction)"
    return (
        f"as the platform: {placement.name} policy over resident memory within the cap, CPU"
        f" {placement.vcpu_per_gib:g} vCPU per GiB at the platform's CPU overcommit and"
        " hot-spot threshold; when no node has room, place_cold's evictions, then the policy"
    )


@dataclass(frozen=True)
class Setup:
    """What every run of one invocation shares."""

    path: Path
    functions: list[Function]
    periods: list[list[Period]]
    nodes: int
    limits: OvercommitLimits
    cfg: BalloonConfig
    placement: Placement

    def sizes(self, column: str, factor: float, fixed: Sequence[int] | None) -> list[Sizing]:
        """Each function's sizing: working set from `column`, limit from F and `fixed`."""
        figures = memory_figures(self.path, column, factor, fixed)
        return [figures[f.app] for f in self.functions]

    def with_working_set(self, sizing: Sequence[Sizing], column: str) -> list[Sizing]:
        """The same limits with the working set taken from another 100_mem.csv column."""
        other = self.sizes(column, 1.0, None)
        return [Sizing(s.memory_mb, o.working_set_mb) for s, o in zip(sizing, other, strict=True)]

    def floor(self, sizing: Sequence[Sizing]) -> Outcome:
        """The unbounded pool: cold starts that no memory could avoid."""
        return self.run(sizing, None, 1, 1 << 30)

    def run(
        self,
        sizing: Sequence[Sizing],
        balloon: BalloonConfig | None,
        nodes: int,
        node_mb: int,
        limits: OvercommitLimits | None = None,
    ) -> Outcome:
        """One replay of this setup's trace and placement."""
        caps = limits or self.limits
        args = (self.functions, self.periods, sizing, nodes, node_mb)
        return replay("", *args, balloon, caps, self.placement)

    def pair(self, sizing: Sequence[Sizing], gb: float) -> tuple[Outcome, Outcome]:
        """Full size and ballooning on nodes of `gb` GiB."""
        args = (self.functions, self.periods, sizing, self.nodes, int(gb * 1024))
        return run_pair(*args, self.limits, self.placement)

    def note(self, sizing: Sequence[Sizing], gb: float) -> str | None:
        """The busy-memory NOTE for nodes of `gb` GiB, if busy memory alone overflows."""
        pool_mb = self.nodes * int(gb * 1024)
        return busy_note(gb, busy_demand(self.periods, sizing, pool_mb), pool_mb)


Ratios = dict[str, tuple[float, int]]  # label: (colds x full size, calls failed for memory)


def by_node(setup: Setup, sizing: list[Sizing], gbs: list[float], ws_gb: float) -> Ratios:
    """The main table (one pair per node size) and the working-set sensitivity."""
    print("By node memory (working set = pct50; rejected and busy>pool count starts):")
    print(HEADER)
    ratios: Ratios = {}
    for gb in gbs:
        plain, ball = setup.pair(sizing, gb)
        print(row(f"{gb:g} GiB full size", plain))
        print(row(f"{gb:g} GiB ballooning", ball, plain))
        failed = plain.failed_for_memory + ball.failed_for_memory
        ratios[f"{gb:g} GiB nodes"] = (ball.colds / plain.colds, failed)
    print("\n".join(n for n in (setup.note(sizing, gb) for gb in gbs) if n))
    node_mb = int(ws_gb * 1024)
    print(f"\nSensitivity at {ws_gb:g} GiB nodes (x full: to the {ws_gb:g} GiB full-size run):")
    print(HEADER)
    limits = setup.limits
    base = setup.run(sizing, None, setup.nodes, node_mb)
    variants = [
        (f"ws={c.rsplit('_', 1)[1]}", setup.with_working_set(sizing, c), limits)
        for c in ("AverageAllocatedMb_pct1", "AverageAllocatedMb_pct95")
    ]
    variants.append(("ws=0 (bound)", [Sizing(s.memory_mb, 0.0) for s in sizing], limits))
    variants.append(("cap 1.5", sizing, OvercommitLimits(max_ratio=1.5)))
    for label, variant, caps in variants:
        ball = setup.run(variant, setup.cfg, setup.nodes, node_mb, caps)
        print(row(f"{label} ballooning", ball, base))
    return ratios


Mode = tuple[str, float, tuple[int, ...]]  # label, F, the sizes memory_mb is rounded up to


def limit_modes(factors: list[float], lambda_sizes: tuple[int, ...], azure: bool) -> list[Mode]:
    """The table's limit models: F x peak on Lambda's sizes, then Azure's instance sizes."""
    modes = [(f"F={f:g}", f, lambda_sizes) for f in factors]
    return modes + ([("Azure", 1.0, AZURE_SIZES_MB)] if azure else [])


def limits_table(setup: Setup, modes: list[Mode], gbs: list[float]) -> Ratios:
    """The limit-model table: each model x node size, full size against ballooning."""
    models = "; ".join(f"{label}: {limit_model(f, sizes)}" for label, f, sizes in modes)
    print(
        f"\nConfigured limits ({models}); working set pct50, {setup.nodes} nodes; x floor:"
        " full-size colds / unbounded colds, > 1 = memory-bound; defl/full: mean per function:"
    )
    print(TABLE_HEADER)
    ratios: Ratios = {}
    notes = []
    for label, factor, fixed in modes:
        sizing = setup.sizes("AverageAllocatedMb_pct50", factor, fixed)
        floor = setup.floor(sizing)
        mean_ratio = mean_deflated_ratio(sizing, setup.cfg)
        for gb in gbs:
            plain, ball = setup.pair(sizing, gb)
            print(table_line(label, gb, floor, plain, ball, mean_ratio))
            failed = plain.failed_for_memory + ball.failed_for_memory
            ratios[f"{label}, {gb:g} GiB nodes"] = (ball.colds / plain.colds, failed)
            note = setup.note(sizing, gb)
            notes.append(f"{note} ({label})" if note else "")
    print("\n".join(n for n in notes if n))
    return ratios


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
    parser.add_argument(
        "--limit-factor",
        type=float,
        default=1.0,
        help="configured memory_mb = at least F x the app's pct100 (default 1.0: its peak)",
    )
    parser.add_argument(
        "--limit-sizes",
        type=int,
        nargs="*",
        default=None,
        metavar="MB",
        help="round memory_mb up to the smallest of these sizes (bare: Lambda's"
        f" {', '.join(map(str, LAMBDA_SIZES_MB))}; absent: {STEP_MB} MB steps);"
        " also the sizes of the limit-factor table (absent: Lambda's)",
    )
    parser.add_argument(
        "--table-factors", type=float, nargs="*", default=[1.0, 1.5, 2.0], help="F values"
    )
    parser.add_argument(
        "--table-gb", type=float, nargs="*", default=[16.0, 20.0], help="GiB, memory-bound"
    )
    parser.add_argument(
        "--no-azure", action="store_true", help="leave Azure's instance sizes out of the table"
    )
    parser.add_argument(
        "--placement",
        choices=("auto", *POLICY_NAMES, PACK),
        default=Placement().name,
        help="a platform placement policy (default: the platform's), or pack: place_cold alone",
    )
    parser.add_argument(
        "--node-vcpu-per-gib",
        type=float,
        default=Placement().vcpu_per_gib,
        help="each node's vCPUs per GiB of memory (default: the small and medium flavors')",
    )
    args = parser.parse_args(argv)
    if args.limit_factor < 1.0 or any(f < 1.0 for f in args.table_factors):
        parser.error("limit factors must be >= 1.0 (a limit below the peak would OOM)")
    fixed: tuple[int, ...] | None = None
    if args.limit_sizes is not None:
        fixed = tuple(args.limit_sizes) or LAMBDA_SIZES_MB
    started = time.perf_counter()
    path = args.data.resolve()
    functions = load_trace(path)
    periods = busy_periods(path, functions, args.seed)
    limits = OvercommitLimits(max_ratio=args.max_ratio)
    placement = Placement(args.placement, args.node_vcpu_per_gib)
    setup = Setup(path, functions, periods, args.nodes, limits, BalloonConfig(), placement)
    cfg = setup.cfg
    sizing = setup.sizes("AverageAllocatedMb_pct50", args.limit_factor, fixed)
    full = sum(s.memory_mb for s in sizing)
    deflated = sum(deflated_mb(s, cfg) for s in sizing)
    print(
        f"Ballooning replay: {len(functions)} functions, {sum(len(p) for p in periods):,}"
        f" busy periods, {sum(sum(f.calls_per_minute) for f in functions):,} calls ({path})"
    )
    print(
        f"{limit_model(args.limit_factor, fixed)}: {full:,} MB in all; deflated to the"
        f" median working set (100_mem.csv AverageAllocatedMb_pct50) + headroom:"
        f" {deflated:,} MB ({deflated / full:.2f}x; mean per function"
        f" {mean_deflated_ratio(sizing, cfg):.2f}x)"
    )
    print(
        f"pool: {args.nodes} nodes, fixed 10 min keep-alive, LRU eviction, balloon grace"
        f" {cfg.idle_grace_s:g} s, headroom max({cfg.headroom_mb} MB,"
        f" {cfg.headroom_fraction:.0%}), overcommit cap {limits.max_ratio:g}, seed {args.seed}"
    )
    print(f"placement: {describe(placement)}")
    free = setup.floor(sizing)
    print(
        f"unbounded memory (floor): {free.colds:,} cold starts, p75 app cold"
        f" {free.p75_app_cold_pct:.1f} % (README's fixed 10 min: 25.0 %)\n"
    )
    ratios = by_node(setup, sizing, args.node_gb, args.sensitivity_gb)
    modes = limit_modes(args.table_factors, fixed or LAMBDA_SIZES_MB, not args.no_azure)
    if modes and args.table_gb:
        ratios |= limits_table(setup, modes, args.table_gb)
    print("\nTarget: >= 30 % fewer cold starts, 0 calls failed for memory (pct50 working set)")
    for label, (ratio, failed) in ratios.items():
        verdict = "PASS" if ratio <= TARGET and failed == 0 else "MISS"
        print(
            f"  {verdict}  {label}: cold starts {ratio:.2f}x of full size,"
            f" {failed} calls failed for memory"
        )
    print(f"replay time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
