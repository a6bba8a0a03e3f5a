"""Offline vector bin packing on the Panigrahy et al. instance classes (bench/placement.py (a)).

Bins used / OPT (LB where OPT is unknown), per class and overall, for every online policy
(items in file order), the offline heuristics, the best of all of them per instance, and
the consolidation planner, checked against the reference figures in the data README; then
the planner's time on large instances.
"""

from __future__ import annotations

import csv
import random
import statistics
import tarfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from invoker.nodes.consolidation import ConsolidationPlanner
from invoker.nodes.packing import (
    OFFLINE_HEURISTICS,
    Bins,
    lower_bound,
    offline_packing,
    validate_packing,
)
from invoker.nodes.placement import (
    POLICY_NAMES,
    NodeView,
    PlacementPolicy,
    Vector,
    placement_policy_by_name,
    vadd,
)

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
