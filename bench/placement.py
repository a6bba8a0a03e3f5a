"""Placement benchmarks: offline vector bin packing and an online day of the Azure trace.

(a) Offline, on the Panigrahy et al. instance classes (`../shared/data/vector-packing`):
    bins used / OPT (LB where OPT is unknown), per class and overall, for every online policy
    (items in file order), the offline heuristics, the best of all of them per instance, and
    the consolidation planner; the harness is first checked against the reference figures in
    the data README. Then the planner's time on 500-item instances.
(b) Online, on a day of `../shared/data/azure-functions-2019`: containers arrive and leave
    (fixed keep-alive), are placed on VMs by each policy, and the pool autoscaler (simulated
    provider) adds and consolidates VMs. VM-hours used vs the per-minute lower bound.

Usage (from the project root):
    .venv/bin/python bench/placement.py [--quick] [--vector-packing DIR] [--azure DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import random
import statistics
import sys
import tarfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from invoker.nodes.autoscale import decide_release, decide_scale_in, decide_scale_out
from invoker.nodes.consolidation import ConsolidationPlanner
from invoker.nodes.model import Flavor
from invoker.nodes.packing import (
    OFFLINE_HEURISTICS,
    Bins,
    lower_bound,
    offline_packing,
    validate_packing,
)
from invoker.nodes.placement import (
    POLICY_NAMES,
    BestFit,
    NodeState,
    NodeView,
    PlacementLimits,
    PlacementPolicy,
    Vector,
    placement_policy_by_name,
    vadd,
    vsum,
)
from invoker.providers.simulated import SimulatedProvider

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

# Reference figures from the data README (an independent implementation, same files).
REFERENCE = {
    "next-fit": 1.303,
    "worst-fit": 1.107,
    "random-fit": 1.092,
    "first-fit": 1.084,
    "best-fit": 1.079,
    "ffd-l2": 1.041,
    "bfd-l2": 1.042,
    "bin-centric-norm": 1.040,
    "bin-centric-dot": 1.032,
    "best per instance": 1.025,
}
REFERENCE_TOLERANCE = 0.005


# --------------------------------------------------------------------------------------------
# (a) Offline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    name: str
    cls: str
    capacity: Vector
    items: list[Vector]
    reference: int  # OPT, or LB where OPT is unknown


def parse_vbp(text: str) -> tuple[Vector, list[Vector]]:
    """A .vbp file: d; the d capacities; m item types; m lines of d sizes and a count."""
    nums = [int(x) for x in text.split()]
    d = nums[0]
    capacity = tuple(nums[1 : 1 + d])
    pos = 2 + d
    items: list[Vector] = []
    for _ in range(nums[1 + d]):
        size = tuple(nums[pos : pos + d])
        items.extend([size] * nums[pos + d])
        pos += d + 1
    return capacity, items


def load_instances(directory: Path) -> list[Instance]:
    """Every instance in the tarball, with its OPT (or LB) from the bounds file."""
    bounds: dict[str, int] = {}
    with open(directory / "panigrahy-small-bounds.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            opt = int(row["OPT"])
            bounds[row["instance_name"]] = opt if opt > 0 else int(row["LB"])
    out: list[Instance] = []
    with tarfile.open(directory / "panigrahy-small.tar.gz") as tar:
        for member in tar.getmembers():
            if not member.name.endswith(".vbp"):
                continue
            name = Path(member.name).stem
            fh = tar.extractfile(member)
            assert fh is not None
            capacity, items = parse_vbp(fh.read().decode())
            out.append(Instance(name, name.split("_")[0], capacity, items, bounds[name]))
    out.sort(key=lambda i: (int(i.cls.removeprefix("class")), i.name))
    return out


def online_bins(policy: PlacementPolicy, items: Sequence[Vector], capacity: Vector) -> Bins:
    """Items in the order given through an online policy; a new bin when it says None."""
    views: list[NodeView] = []
    bins: Bins = []
    for i, item in enumerate(items):
        chosen = policy.place(item, views)
        if chosen is None:
            views.append(NodeView(str(len(views)), capacity, item))
            bins.append([i])
        else:
            k = int(chosen)
            views[k] = NodeView(chosen, capacity, vadd(views[k].allocated, item))
            bins[k].append(i)
    return bins


def offline_rows(inst: Instance, planner_budget: float, seed: int) -> dict[str, tuple[int, float]]:
    """Bins (and seconds) per method on one instance; every packing is validated."""
    out: dict[str, tuple[int, float]] = {}

    def run(name: str, fn: Callable[[], Bins]) -> None:
        t = time.perf_counter()
        bins = fn()
        elapsed = time.perf_counter() - t
        validate_packing(inst.items, inst.capacity, bins)
        out[name] = (len(bins), elapsed)

    for name in POLICY_NAMES:
        policy = placement_policy_by_name(name, rng=random.Random(seed))
        run(name, lambda p=policy: online_bins(p, inst.items, inst.capacity))  # type: ignore[misc]
    for name in OFFLINE_HEURISTICS:
        run(name, lambda n=name: offline_packing(n, inst.items, inst.capacity))  # type: ignore[misc]
    out["best per instance"] = (min(b for b, _ in out.values()), 0.0)
    planner = ConsolidationPlanner(planner_budget, seed=seed)
    run("planner", lambda: planner.plan(inst.items, inst.capacity))
    return out


def _job(args: tuple[Instance, float, int]) -> tuple[str, dict[str, tuple[int, float]]]:
    inst, budget, seed = args
    return inst.name, offline_rows(inst, budget, seed)


def run_offline(
    instances: list[Instance], planner_budget: float, seed: int, jobs: int
) -> dict[str, dict[str, tuple[int, float]]]:
    work = [(inst, planner_budget, seed) for inst in instances]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            return dict(pool.map(_job, work, chunksize=8))
    return dict(map(_job, work))


def print_offline(
    instances: list[Instance],
    results: dict[str, dict[str, tuple[int, float]]],
    budget: float,
    full: bool,
) -> list[str]:
    classes = sorted({i.cls for i in instances}, key=lambda c: int(c.removeprefix("class")))
    methods = list(next(iter(results.values())))
    ratio: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for inst in instances:
        for m, (bins, _) in results[inst.name].items():
            ratio[m][inst.cls].append(bins / inst.reference)
            ratio[m]["overall"].append(bins / inst.reference)
    lines = [
        f"Offline: {len(instances)} instances, mean bins / OPT (LB where OPT = -1); "
        f"planner budget {budget:g} s per instance",
        "",
        "| method | "
        + " | ".join(c.removeprefix("class") for c in classes)
        + " | overall | reference | diff |",
        "|---" * (len(classes) + 4) + "|",
    ]
    mismatches = []
    for m in methods:
        cells = [f"{statistics.mean(ratio[m][c]):.3f}" for c in classes]
        overall = statistics.mean(ratio[m]["overall"])
        ref = REFERENCE.get(m)
        ref_cells = ["", ""]
        if ref is not None:
            diff = overall - ref
            ref_cells = [f"{ref:.3f}", f"{diff:+.3f}"]
            if abs(diff) > REFERENCE_TOLERANCE:
                mismatches.append(m)
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {overall:.4f} | " + " | ".join(ref_cells) + " |"
        )
    lines.append("")
    if not full:
        lines.append("Harness check skipped: the reference figures are for the full set.")
    elif mismatches:
        lines.append(f"HARNESS CHECK FAILED (> {REFERENCE_TOLERANCE} from reference): {mismatches}")
    else:
        lines.append(
            f"Harness check: every reference figure reproduced within {REFERENCE_TOLERANCE}."
        )
    planner = statistics.mean(ratio["planner"]["overall"])
    best = statistics.mean(ratio["best per instance"]["overall"])
    singles = {
        m: statistics.mean(ratio[m]["overall"])
        for m in methods
        if m not in ("planner", "best per instance")
    }
    top = min(singles, key=lambda m: singles[m])
    lines.append(
        f"Planner {planner:.4f} vs best single heuristic ({top}) {singles[top]:.4f} "
        f"({planner / singles[top]:.3f}x) and best per instance {best:.4f} ({planner / best:.3f}x)."
    )
    worse = [
        i.name for i in instances if results[i.name]["planner"][0] > results[i.name]["ffd-l2"][0]
    ]
    lines.append(f"Instances where the planner used more bins than FFD-L2: {len(worse)}.")
    times = [results[i.name]["planner"][1] for i in instances]
    lines.append(
        f"Planner time per instance: mean {statistics.mean(times):.3f} s, max {max(times):.3f} s."
    )
    return lines


def big_instances(instances: list[Instance], size: int) -> list[Instance]:
    """One `size`-item instance per class: its first 120-item, 10-dimension instance repeated."""
    out = []
    for cls in sorted({i.cls for i in instances}, key=lambda c: int(c.removeprefix("class"))):
        pick = [
            i for i in instances if i.cls == cls and len(i.items) == 120 and len(i.capacity) == 10
        ]
        pick = pick or [max((i for i in instances if i.cls == cls), key=lambda i: len(i.items))]
        src = pick[0]
        items = (src.items * (size // len(src.items) + 1))[:size]
        out.append(Instance(f"{src.name}x{size}", cls, src.capacity, items, 0))
    return out


def print_big(instances: list[Instance], budget: float, seed: int) -> list[str]:
    lines = [
        "",
        f"Planner on {len(instances[0].items)}-item instances (a 120-item instance of each class "
        f"repeated), budget {budget:g} s:",
        "",
        "| instance | lower bound | FFD-L2 | best heuristic | planner | seconds |",
        "|---|---|---|---|---|---|",
    ]
    worst = 0.0
    for inst in instances:
        ffd = len(offline_packing("ffd-l2", inst.items, inst.capacity))
        best = min(len(offline_packing(h, inst.items, inst.capacity)) for h in OFFLINE_HEURISTICS)
        t = time.perf_counter()
        bins = ConsolidationPlanner(budget, seed=seed).plan(inst.items, inst.capacity)
        elapsed = time.perf_counter() - t
        validate_packing(inst.items, inst.capacity, bins)
        worst = max(worst, elapsed)
        lines.append(
            f"| {inst.name} | {lower_bound(inst.items, inst.capacity)} | {ffd} | {best} | "
            f"{len(bins)} | {elapsed:.3f} |"
        )
    lines += ["", f"Planner max time on a {len(instances[0].items)}-item instance: {worst:.3f} s."]
    return lines


# --------------------------------------------------------------------------------------------
# (b) Online: a day of the Azure Functions trace
# --------------------------------------------------------------------------------------------

MB_PER_VCPU = 1769  # AWS Lambda's memory-to-CPU ratio: the trace has no CPU figures.


@dataclass(frozen=True)
class Function:
    memory_mb: int
    vcpu: float
    alive: list[int]  # warm containers wanted in each minute (busy + kept alive)

    @property
    def demand(self) -> Vector:
        return (self.vcpu, self.memory_mb)


def _busy_kernel(duration_s: float, offsets: int = 12) -> list[float]:
    """Expected busy seconds in minute t+j of one invocation started uniformly in minute t."""
    span = math.ceil((60.0 + duration_s) / 60.0) + 1
    kernel = [0.0] * span
    for o in range(offsets):
        start = (o + 0.5) * 60.0 / offsets
        end = start + duration_s
        for j in range(span):
            lo, hi = j * 60.0, (j + 1) * 60.0
            kernel[j] += max(0.0, min(end, hi) - max(start, lo)) / offsets
    return kernel


def load_trace(
    directory: Path, keep_alive_min: int, minutes: int, vcpu_per_container: float
) -> list[Function]:
    """Per function: memory (its app's average allocation), and warm containers per minute.

    Busy containers in a minute = ceil(busy seconds / 60) from invocations spread uniformly
    over their minute, each lasting the function's average duration; a container then stays
    warm `keep_alive_min` minutes after its last busy minute (fixed keep-alive).
    vCPUs per container: `vcpu_per_container`, or memory / MB_PER_VCPU when it is 0.
    """
    with open(directory / "100_mem.csv", newline="") as f:
        memory = {r["HashApp"]: int(float(r["AverageAllocatedMb"])) for r in csv.DictReader(f)}
    with open(directory / "100_run.csv", newline="") as f:
        duration = {r["HashFunction"]: float(r["Average"]) / 1000.0 for r in csv.DictReader(f)}
    out: list[Function] = []
    with open(directory / "100_inv.csv", newline="") as f:
        for r in csv.DictReader(f):
            inv = [int(r[f"minute_{m + 1}"]) for m in range(minutes)]
            kernel = _busy_kernel(duration[r["HashFunction"]])
            busy = [0.0] * minutes
            for t, n in enumerate(inv):
                if n:
                    for j, k in enumerate(kernel):
                        if t + j < minutes:
                            busy[t + j] += n * k
            conc = [math.ceil(b / 60.0 - 1e-9) if b > 1e-9 else 0 for b in busy]
            alive = [max(conc[max(0, m - keep_alive_min) : m + 1]) for m in range(minutes)]
            mem = max(memory[r["HashApp"]], 1)
            vcpu = vcpu_per_container or round(mem / MB_PER_VCPU, 3)
            out.append(Function(mem, vcpu, alive))
    return out


def lower_bound_vm_hours(
    functions: list[Function], flavor: Flavor, limits: PlacementLimits, minutes: int
) -> float:
    """Sum over minutes of max over dimensions of ceil(demand / VM limit), in hours."""
    limit = limits.limit(flavor.capacity)
    total = 0
    for m in range(minutes):
        demand = [0.0, 0.0]
        for fn in functions:
            demand[0] += fn.alive[m] * fn.vcpu
            demand[1] += fn.alive[m] * fn.memory_mb
        total += max(math.ceil(d / c - 1e-9) for d, c in zip(demand, limit, strict=True))
    return total / 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class OnlineResult:
    vm_hours: float
    cost: float
    peak_nodes: int
    migrations: int
    pending_container_minutes: int
    placements: int
    served_bound_vm_hours: float  # the same bound over the containers actually placed


async def replay(
    functions: list[Function],
    policy: PlacementPolicy,
    flavor: Flavor,
    minutes: int,
    *,
    consolidate: bool,
    utilisation_below: float,
    headroom: float,
    max_nodes: int,
) -> OnlineResult:
    """Minute by minute: departures, arrivals placed by `policy`, scale out, consolidate."""
    limits = policy.limits
    clock = Clock()
    provider = SimulatedProvider(clock)
    containers: list[list[tuple[str, str]]] = [[] for _ in functions]  # (container id, node id)
    pending: list[int] = []  # function index per container that found no VM this minute
    serial = 0
    migrations = pending_minutes = placements = peak = served_bound = 0
    mover = BestFit(limits)
    for m in range(minutes):
        clock.now = m * 60.0
        nodes = {n.id: n for n in await provider.list()}
        peak = max(peak, len(nodes))
        # Departures: containers past their keep-alive; drop the one on the emptiest node.
        for fi, fn in enumerate(functions):
            live = containers[fi]
            excess = len(live) - fn.alive[m]
            if excess > 0:
                live.sort(key=lambda c: limits.utilisation(nodes[c[1]].view()))
                for cid, nid in live[:excess]:
                    nodes[nid].free(cid)
                del live[:excess]
        # Arrivals (and whatever waited for a VM), placed on ready nodes.
        wanted = [
            fi
            for fi, fn in enumerate(functions)
            for _ in range(max(0, fn.alive[m] - len(containers[fi])))
        ]
        ready = [n for n in nodes.values() if n.state is NodeState.READY]
        views = [n.view() for n in ready]
        index = {v.id: k for k, v in enumerate(views)}
        unplaced: list[int] = []
        for fi in wanted:
            demand = functions[fi].demand
            chosen = policy.place(demand, views)
            if chosen is None:
                unplaced.append(fi)
                continue
            serial += 1
            cid = f"c{serial}"
            nodes[chosen].allocate(cid, demand, limits)
            containers[fi].append((cid, chosen))
            views[index[chosen]] = nodes[chosen].view()
            placements += 1
        pending = unplaced
        pending_minutes += len(pending)
        for fl in decide_scale_out(
            [functions[fi].demand for fi in pending],
            list(nodes.values()),
            [flavor],
            min_nodes=1,
            max_nodes=max_nodes,
            limits=limits,
        ):
            await provider.provision(fl)
        # Consolidate: drain under-used nodes whose containers fit elsewhere, move them.
        draining: set[str] = set()
        if consolidate and not pending:
            draining = set(
                decide_scale_in(
                    list(nodes.values()),
                    clock.now,
                    min_nodes=1,
                    utilisation_below=utilisation_below,
                    headroom=headroom,
                    limits=limits,
                )
            )
        if draining:
            stay = [
                n for n in nodes.values() if n.state is NodeState.READY and n.id not in draining
            ]
            stay_views = [n.view() for n in stay]
            stay_index = {v.id: k for k, v in enumerate(stay_views)}
            where: dict[str, int] = {}
            for fi, live in enumerate(containers):
                for cid, nid in live:
                    if nid in draining:
                        where[cid] = fi
            for nid in draining:
                nodes[nid].drain()
            for fi, live in enumerate(containers):
                kept: list[tuple[str, str]] = []
                for cid, nid in live:
                    if nid not in draining:
                        kept.append((cid, nid))
                        continue
                    moved = nodes[nid].free(cid)
                    assert moved is not None
                    target = mover.place(moved, stay_views)
                    migrations += 1
                    if target is None:
                        pending.append(fi)
                        continue
                    nodes[target].allocate(cid, moved, limits)
                    stay_views[stay_index[target]] = nodes[target].view()
                    kept.append((cid, target))
                containers[fi] = kept
        for nid in decide_release(list(nodes.values())):
            await provider.release(nid)
        served = vsum([n.allocated for n in nodes.values()], 2)
        limit = limits.limit(flavor.capacity)
        served_bound += max(math.ceil(s / c - 1e-9) for s, c in zip(served, limit, strict=True))
    end = minutes * 60.0
    return OnlineResult(
        vm_hours=provider.vm_hours(end),
        cost=provider.cost(end),
        peak_nodes=peak,
        migrations=migrations,
        pending_container_minutes=pending_minutes,
        placements=placements,
        served_bound_vm_hours=served_bound / 60.0,
    )


def run_online(args: argparse.Namespace) -> None:
    minutes = 180 if args.quick else 1440
    flavor = Flavor("sim-16x64", vcpu=16, memory_mb=65536, price_per_hour=0.768, boot_s=60.0)
    limits = PlacementLimits(cpu_overcommit=args.cpu_overcommit)
    functions = load_trace(Path(args.azure), args.keep_alive_min, minutes, args.vcpu)
    lb = lower_bound_vm_hours(functions, flavor, limits, minutes)
    demanded = sum(sum(fn.alive) for fn in functions)
    lines = [
        "",
        f"Online: {len(functions)} functions, {minutes} minutes of the Azure 2019 trace, fixed "
        f"keep-alive {args.keep_alive_min} min, VM {flavor.vcpu:g} vCPU / {flavor.memory_mb} MB "
        f"(CPU overcommit {args.cpu_overcommit:g}), boot {flavor.boot_s:g} s, "
        f"${flavor.price_per_hour}/h; container vCPU = "
        + (f"{args.vcpu:g}." if args.vcpu else f"memory / {MB_PER_VCPU} MB."),
        f"Lower bound (sum over minutes of max over dimensions of ceil(demand / VM)): "
        f"{lb:.1f} VM-hours. Warm containers demanded: {demanded} container-minutes.",
        "",
        "| policy | consolidation | VM-hours | vs lower bound | vs bound of placed | cost $ "
        "| peak VMs | moved containers | container-minutes waiting for a VM | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    names = ["best-fit"] if args.quick else list(POLICY_NAMES)
    runs: list[tuple[str, float | None, float]] = []
    for n in names:
        runs += [(n, args.drain_below, 0.0), (n, None, 0.0)]
    runs += [("best-fit", args.drain_below, h) for h in args.headroom]
    for name, drain_below, headroom in runs:
        policy = placement_policy_by_name(
            name,
            cpu_overcommit=args.cpu_overcommit,
            rng=random.Random(args.seed),
            cyclic=True,  # a cluster's next fit wraps round its nodes instead of opening one
        )
        t = time.perf_counter()
        r = asyncio.run(
            replay(
                functions,
                policy,
                flavor,
                minutes,
                consolidate=drain_below is not None,
                utilisation_below=drain_below or 0.0,
                headroom=headroom,
                max_nodes=args.max_nodes,
            )
        )
        elapsed = time.perf_counter() - t
        label = "release empty only"
        if drain_below is not None:
            label = f"drain < {drain_below:g}" + (f", headroom {headroom:g}" if headroom else "")
        shown = f"{name} (cyclic)" if name == "next-fit" else name
        print(
            f"| {shown} | {label} | {r.vm_hours:.1f} | {r.vm_hours / lb:.3f}x | "
            f"{r.vm_hours / r.served_bound_vm_hours:.3f}x | {r.cost:.2f} | "
            f"{r.peak_nodes} | {r.migrations} | {r.pending_container_minutes} | {elapsed:.1f} |",
            flush=True,
        )


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vector-packing", default=str(DATA / "vector-packing"))
    parser.add_argument("--azure", default=str(DATA / "azure-functions-2019"))
    parser.add_argument("--quick", action="store_true", help="a small subset, for CI smoke")
    parser.add_argument("--planner-budget", type=float, default=0.25, help="seconds per instance")
    parser.add_argument("--big-budget", type=float, default=0.8, help="seconds, 500-item instances")
    parser.add_argument("--big-size", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=1, help="processes for the offline part")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-alive-min", type=int, default=10)
    parser.add_argument("--cpu-overcommit", type=float, default=4.0)
    parser.add_argument("--drain-below", type=float, default=0.8, help="utilisation")
    parser.add_argument(
        "--headroom",
        type=float,
        nargs="*",
        default=[0.1, 0.2],
        help="extra best-fit runs keeping this fraction of the pool free when consolidating",
    )
    parser.add_argument(
        "--vcpu",
        type=float,
        default=1.0,
        help="vCPUs per container (Nimbus's default size); 0 = memory / 1769 MB as on Lambda",
    )
    parser.add_argument("--max-nodes", type=int, default=200)
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--skip-online", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    print(
        "command: "
        + " ".join(["bench/placement.py", *(argv if argv is not None else sys.argv[1:])])
    )
    if not args.skip_offline:
        instances = load_instances(Path(args.vector_packing))
        all_instances = instances
        if args.quick:
            instances = [
                i for i in instances if len(i.items) <= 40 and i.name.endswith(("_0", "_1"))
            ]
        results = run_offline(instances, args.planner_budget, args.seed, args.jobs)
        full = len(instances) == len(all_instances)
        for line in print_offline(instances, results, args.planner_budget, full):
            print(line)
        big = big_instances(all_instances, args.big_size)
        if args.quick:
            big = big[:2]
        for line in print_big(big, args.big_budget, args.seed):
            print(line, flush=True)
    if not args.skip_online:
        run_online(args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
