"""Keep-alive replay: cold starts vs wasted memory per policy, on the Azure Functions 2019 sample.

Replays `azure-functions-2019` (100 functions, one day, invocations per minute; Shahrad et
al., "Serverless in the Wild", USENIX ATC 2020, data CC-BY-4.0) through the real policies
of `invoker/containers/keepalive.py`, the way the data README describes its reference replay:

- 1-minute resolution, one container per function. The calls of a minute arrive at its
  start (`observe`) and the container goes idle at its end (`decide`), so an idle time
  is a whole number of minutes.
- A minute's calls are cold when no container is warm at the start of the minute: then
  the first of them is cold and the others share the container it started.
- Wasted memory: the minutes in which a container is held without calls (a minute
  counts if the container is up at any point in it, so a pre-warm started mid-minute
  pays for the whole minute) x the app's AverageAllocatedMb from 100_mem.csv, joined on
  HashApp. Cut at the end of the day.
- Per app (here one function each): cold-start % = cold calls / calls. Reported: the
  75th percentile across apps (linear interpolation), and wasted GB-minutes, both
  normalised to fixed 10-minute keep-alive measured in the same run.

First the README's independent reference points are reproduced; then the target:
p75 cold-start % <= 0.6x fixed 10 min at wasted memory <= 1.0x.

    .venv/bin/python bench/keepalive.py [../shared/data/azure-functions-2019] [--sweep]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from invoker.containers.history_policies import ColdStartBudget, HybridHistogram
from invoker.containers.keepalive import FixedTTL
from invoker.containers.keepalive_model import KeepAliveDecision, KeepAlivePolicy

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "azure-functions-2019"
MINUTE_S = 60.0
COLD_TARGET = 0.6
MEMORY_TARGET = 1.0

# The data README's reference replay: (p75 cold-start %, wasted memory % of fixed 10 min).
REFERENCE: dict[str, tuple[float, float]] = {
    "no keep-alive": (68.8, 0.0),
    "fixed 10 min": (25.0, 100.0),
    "fixed 20 min": (19.3, 124.0),
    "fixed 60 min": (13.8, 166.0),
    "hybrid (paper)": (9.6, 180.0),
    "keep forever": (7.3, 326.0),
}
REFERENCE_FIXED10_GB_MIN = 36_229.0


@dataclass(frozen=True)
class Function:
    """One function of the trace: its calls per minute and its app's memory."""

    key: str
    app: str
    calls_per_minute: tuple[int, ...]
    memory_mb: float


@dataclass(frozen=True)
class AppOutcome:
    """What one app saw in a replay."""

    calls: int
    colds: int
    idle_mb_minutes: float

    @property
    def cold_pct(self) -> float:
        """Cold calls as a percentage of calls."""
        return 100.0 * self.colds / self.calls


@dataclass(frozen=True)
class Summary:
    """A policy's figures over the whole trace."""

    label: str
    p75_cold_pct: float
    p50_cold_pct: float
    mean_cold_pct: float
    wasted_gb_min: float
    seconds: float
    cold_pct_by_app: dict[str, float]

    def moved(self, base: Summary, points: float = 1.0) -> tuple[int, int]:
        """(apps worse, apps better) than `base` by more than `points` of cold-start %."""
        worse = better = 0
        for app, pct in self.cold_pct_by_app.items():
            delta = pct - base.cold_pct_by_app[app]
            worse += delta > points
            better += delta < -points
        return worse, better


def load_trace(path: Path) -> list[Function]:
    """Functions of 100_inv.csv with the memory of their app (100_mem.csv, on HashApp)."""
    with open(path / "100_mem.csv", newline="") as f:
        memory = {row["HashApp"]: float(row["AverageAllocatedMb"]) for row in csv.DictReader(f)}
    functions = []
    with open(path / "100_inv.csv", newline="") as f:
        reader = csv.DictReader(f)
        minute_cols = [c for c in reader.fieldnames or [] if c.startswith("minute_")]
        minute_cols.sort(key=lambda c: int(c.removeprefix("minute_")))
        for row in reader:
            app = row["HashApp"]
            if app not in memory:
                raise ValueError(f"app {app} has no row in 100_mem.csv")
            calls = tuple(int(row[c]) for c in minute_cols)
            functions.append(Function(row["HashFunction"], app, calls, memory[app]))
    return functions


def held_minutes(decision: KeepAliveDecision, gap_minutes: int) -> int:
    """Whole minutes of an idle gap during which a container is up (at any point)."""
    first = math.floor(decision.warm_from_s / MINUTE_S)
    end = (
        gap_minutes
        if math.isinf(decision.keep_alive_s)
        else math.ceil(decision.keep_alive_s / MINUTE_S)
    )
    return max(0, min(end, gap_minutes) - first)


def replay(fn: Function, policy: KeepAlivePolicy) -> tuple[int, int, int]:
    """(calls, cold calls, idle minutes held) of one function under a policy."""
    day = len(fn.calls_per_minute)
    calls = colds = idle_minutes = 0
    decision: KeepAliveDecision | None = None
    last = -1
    for minute, n in enumerate(fn.calls_per_minute):
        if n == 0:
            continue
        calls += n
        if decision is None:
            colds += 1
        else:
            gap = minute - last - 1
            if not decision.warm_at(gap * MINUTE_S):
                colds += 1
            idle_minutes += held_minutes(decision, gap)
        policy.observe(fn.key, minute * MINUTE_S, n)
        decision = policy.decide(fn.key, (minute + 1) * MINUTE_S)
        last = minute
    if decision is not None:
        idle_minutes += held_minutes(decision, day - last - 1)
    return calls, colds, idle_minutes


def percentile(values: Iterable[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_policy(
    label: str, make: Callable[[], KeepAlivePolicy], functions: list[Function]
) -> Summary:
    """Replay every function through one fresh policy; aggregate per app."""
    started = time.perf_counter()
    policy = make()
    per_app: dict[str, list[float]] = {}
    for fn in functions:
        calls, colds, idle = replay(fn, policy)
        acc = per_app.setdefault(fn.app, [0.0, 0.0, 0.0])
        acc[0] += calls
        acc[1] += colds
        acc[2] += idle * fn.memory_mb
    outcomes = {
        app: AppOutcome(int(a[0]), int(a[1]), a[2]) for app, a in per_app.items() if a[0] > 0
    }
    cold = {app: o.cold_pct for app, o in outcomes.items()}
    return Summary(
        label,
        percentile(cold.values(), 75),
        percentile(cold.values(), 50),
        sum(cold.values()) / len(cold),
        sum(o.idle_mb_minutes for o in outcomes.values()) / 1024.0,
        time.perf_counter() - started,
        cold,
    )


def policies() -> list[tuple[str, Callable[[], KeepAlivePolicy]]]:
    """The policies compared, in print order."""
    return [
        ("no keep-alive", lambda: FixedTTL(0.0)),
        ("fixed 10 min", lambda: FixedTTL(600.0)),
        ("fixed 20 min", lambda: FixedTTL(1200.0)),
        ("fixed 60 min", lambda: FixedTTL(3600.0)),
        ("hybrid (paper)", lambda: HybridHistogram()),
        ("keep forever", lambda: FixedTTL(math.inf)),
        ("budget (ours)", lambda: ColdStartBudget()),
    ]


def sweep() -> list[tuple[str, Callable[[], KeepAlivePolicy]]]:
    """ColdStartBudget with one parameter at a time moved off its default."""
    variants: list[tuple[str, dict[str, Any]]] = [
        *((f"target={t:g}", {"target_cold_fraction": t}) for t in (0.05, 0.08, 0.10, 0.15)),
        *((f"learning={h:g}h", {"learning_ttl_s": h * 3600}) for h in (1, 4)),
        *((f"min_samples={n}", {"min_samples": n}) for n in (5, 20)),
        *((f"max_idle/hit={m:g}min", {"max_idle_per_hit_s": m * 60}) for m in (30, 120)),
        *((f"cold value={v:g}s", {"cold_start_value_s": v}) for v in (0, 30, 120)),
        ("no periodic", {"periodic_samples": 0}),
    ]
    return [(f"budget {label}", partial(ColdStartBudget, **kw)) for label, kw in variants]


def verdict(s: Summary, base: Summary) -> str:
    """PASS/MISS against the target, relative to fixed 10 minutes of the same run."""
    cold = s.p75_cold_pct / base.p75_cold_pct
    mem = s.wasted_gb_min / base.wasted_gb_min
    ok = cold <= COLD_TARGET and mem <= MEMORY_TARGET
    return (
        f"{'PASS' if ok else 'MISS'}  {s.label}: p75 cold {cold:.2f}x (<= {COLD_TARGET}x),"
        f" wasted memory {mem:.2f}x (<= {MEMORY_TARGET}x) of fixed 10 min"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the replay and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data",
        nargs="?",
        type=Path,
        default=DEFAULT_DATA,
        help="directory with 100_inv.csv and 100_mem.csv",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also replay ColdStartBudget with its parameters varied",
    )
    args = parser.parse_args(argv)
    functions = load_trace(args.data.resolve())
    started = time.perf_counter()
    results = [run_policy(label, make, functions) for label, make in policies()]
    base = next(r for r in results if r.label == "fixed 10 min")

    calls = sum(sum(f.calls_per_minute) for f in functions)
    print(
        f"Keep-alive replay: {len(functions)} functions, {len({f.app for f in functions})} apps,"
        f" {calls:,} calls, {len(functions[0].calls_per_minute)} minutes ({args.data})"
    )
    print(
        f"fixed 10 min wasted memory: {base.wasted_gb_min:,.0f} GB-min"
        f" (README: {REFERENCE_FIXED10_GB_MIN:,.0f})\n"
    )

    print("Reference check (README's independent replay vs this one):")
    print(
        f"  {'policy':<18} {'p75 cold % README':>18} {'here':>7}"
        f"   {'memory % README':>16} {'here':>7}"
    )
    for r in results:
        if r.label in REFERENCE:
            ref_cold, ref_mem = REFERENCE[r.label]
            mem_pct = 100 * r.wasted_gb_min / base.wasted_gb_min
            print(
                f"  {r.label:<18} {ref_cold:>18.1f} {r.p75_cold_pct:>7.1f}"
                f"   {ref_mem:>16.0f} {mem_pct:>7.1f}"
            )

    print("\nPer policy (ratios to fixed 10 min measured in this run):")
    print("  (worse/better: apps whose cold-start % is more than 1 point above/below fixed 10 min)")
    header = (
        f"  {'policy':<28} {'p75 cold %':>10} {'x f10':>6} {'wasted GB-min':>14}"
        f" {'x f10':>6} {'p50 cold %':>10} {'mean cold %':>11} {'worse':>6} {'better':>6}"
        f" {'time s':>7}"
    )
    print(header)
    extra = [run_policy(label, make, functions) for label, make in sweep()] if args.sweep else []
    for r in results + extra:
        worse, better = r.moved(base)
        print(
            f"  {r.label:<28} {r.p75_cold_pct:>10.2f} {r.p75_cold_pct / base.p75_cold_pct:>6.2f}"
            f" {r.wasted_gb_min:>14,.0f} {r.wasted_gb_min / base.wasted_gb_min:>6.2f}"
            f" {r.p50_cold_pct:>10.2f} {r.mean_cold_pct:>11.2f} {worse:>6} {better:>6}"
            f" {r.seconds:>7.2f}"
        )

    print("\nTarget: p75 cold-start % <= 0.6x fixed 10 min at wasted memory <= 1.0x")
    for r in results + extra:
        if r.label.startswith(("fixed 20", "fixed 60", "hybrid", "budget")):
            print("  " + verdict(r, base))
    print(f"\nreplay time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
