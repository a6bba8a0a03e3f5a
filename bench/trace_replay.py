"""Online packing over a day of the Azure Functions 2019 trace (bench/placement.py (b)).

Containers arrive and leave (fixed keep-alive), are placed on VMs by each policy, and the
pool autoscaler (simulated provider) adds and consolidates VMs. VM-hours used vs the
per-minute lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

from invoker.nodes.autoscale import decide_release, decide_scale_in, decide_scale_out
from invoker.nodes.model import Flavor
from invoker.nodes.placement import (
    POLICY_NAMES,
    BestFit,
    NodeState,
    PlacementLimits,
    PlacementPolicy,
    Vector,
    placement_policy_by_name,
    vsum,
)
from invoker.providers.simulated import SimulatedProvider

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
