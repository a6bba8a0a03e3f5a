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
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from trace_replay import run_online
from vector_packing import big_instances, load_instances, print_big, print_offline, run_offline

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


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
