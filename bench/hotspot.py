"""Hot-spot mitigation at run time: a CPU-bound function saturates one node; how long until
it is mitigated, and what a neighbour function on that node sees before, during and after.

Nimbus runs in this process on the real Docker engine with two local cgroup nodes of 1 vCPU
(first-fit: everything starts on the first). A no-op neighbour is called every 20 ms
throughout. After a baseline phase, `--clients` clients each ask for `--cpu-ms` of CPU time
every `--period` s (one call, then a pause for the rest of the period; no pause once a call
takes the whole period): with the defaults 4 x 300 ms per 1 s = 1.2 vCPU asked of a 1-vCPU
node: sharing it, every call outlasts its period, so the clients call back to back and the
node never idles between calls. The work is CPU time, not wall time (the same however
contended the node is); once half the containers have moved, the demand left (0.6 vCPU)
is below the cool threshold, so the node can cool (calls go to whichever container is idle,
so the split between the nodes is about half, not exactly).

The platform's own maintenance loop does the rest, unchanged: it samples the node
cgroups' CPU every `reap_interval_s` (0.5 s here), marks a node hot after `--window` s
above `--hot-above`, and migrates the containers that load it most (make-before-break).
The bench only watches: it swaps in the same heat tracker with every sample written down.
The window and thresholds are the bench's own (production: 30 s above 0.85, 10 s below
0.70) and are printed. The run burns until the first round of hot-spot migrations has
finished (at most `--limit` s), then `--after` s more to see whether the node cooled.

Printed: the node's pressure while burning (and how busy the machine was); time from the
burn's start until the node was seen hot, the migration started and it finished; the
neighbour's p50/p99 before / during / after (the before phase is the same run's baseline);
failed calls (target 0); whether the node cooled (below the cool threshold for a whole
window) and the receiver stayed cool. A run that does not mitigate says so, and why, and
exits with status 1.

    .venv/bin/python bench/hotspot.py [--window 2] [--clients 4] [--cpu-ms 300] [--period 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from common import host_cpu, percentile
from in_process import Gateway, source, two_nodes

from invoker.nodes.heat import HotSpots
from invoker.nodes.hotspot import Heat, HotSpotConfig
from invoker.nodes.node_pool import NodePool

NODE = ("onecpu", 1.0, 1024, "0.01")
REAP_S = 0.5
NEIGHBOUR_GAP_S = 0.02
BURN = """
import time

def handler(event):
    # CPU time, not wall time: the same work however contended the node is
    end = time.process_time() + event.get("cpu_ms", 300) / 1000
    n = 0
    while time.process_time() < end:
        for _ in range(10_000):
            n += 1
    return n
"""


@dataclass(frozen=True)
class Setup:
    """The bench's own knobs (all printed with the results)."""

    window_s: float
    hot_above: float
    cool_below: float
    clients: int
    cpu_ms: int
    period_s: float
    baseline_s: float
    limit_s: float
    after_s: float


@dataclass(frozen=True)
class Reading:
    """One sample the platform's heat tracker took of one node."""

    at: float  # seconds since the run started
    node: str
    pressure: float
    hot: bool


@dataclass(frozen=True)
class HostReading:
    """The machine's CPU counters at a sample: is a node cool for want of burn, or of cores?"""

    at: float
    busy: float  # clock ticks, all cores
    total: float
    own_s: float  # this process's CPU time (the gateway, the clients)


class WatchedHotSpots(HotSpots):
    """The platform's heat tracker, unchanged, with every sample it takes written down
    (the maintenance loop resets a node's heat as soon as it acts, so hot would be missed
    by polling). Its metrics gauges stay with the tracker it replaces."""

    def __init__(self, nodes: NodePool, config: HotSpotConfig, origin: float) -> None:
        super().__init__(nodes, config, clock=time.monotonic)  # the invoker's default clock
        self.origin = origin
        self.readings: list[Reading] = []
        self.host: list[HostReading] = []

    def sample(self) -> dict[str, Heat]:
        heat = super().sample()
        at = time.perf_counter() - self.origin
        self.readings += [Reading(at, n, h.pressure, h.hot) for n, h in heat.items()]
        self.host.append(HostReading(at, *host_cpu(), time.process_time()))
        return heat


# ---- pure: reading the figures ----


def calls_summary(samples: Iterable[tuple[float, int, float]], lo: float, hi: float) -> str:
    """Calls started in [lo, hi): how many, failed, p50 and p99 of the successful ones."""
    mine = [(s, ms) for at, s, ms in samples if lo <= at < hi]
    ok = [ms for s, ms in mine if s == 200]
    if not ok:
        return f"{len(mine):4d} calls, none succeeded"
    return (
        f"{len(mine):4d} calls, {len(mine) - len(ok)} failed, p50 {percentile(ok, 50):6.2f} ms, "
        f"p99 {percentile(ok, 99):7.2f} ms"
    )


def longest_run(readings: list[Reading], holds: Callable[[float], bool]) -> float:
    """The longest time consecutive samples' pressure held `holds` (first to last sample,
    as the tracker counts a window)."""
    best, since = 0.0, None
    for r in readings:
        if holds(r.pressure):
            since = r.at if since is None else since
            best = max(best, r.at - since)
        else:
            since = None
    return best


def between(readings: list[Reading], node: str, lo: float, hi: float) -> list[Reading]:
    """One node's samples taken in [lo, hi)."""
    return [r for r in readings if r.node == node and lo <= r.at < hi]


def pressure_summary(readings: list[Reading], hot_above: float) -> str:
    """Median and range of the samples' pressure, and how many were above `hot_above`."""
    if not readings:
        return "no samples"
    values = [r.pressure for r in readings]
    above = sum(1 for v in values if v > hot_above)
    return (
        f"median {statistics.median(values):.2f}, min {min(values):.2f}, max {max(values):.2f}, "
        f"{above} of {len(values)} samples above {hot_above:g}, longest stretch above "
        f"{longest_run(readings, lambda p: p > hot_above):.1f} s"
    )


def host_summary(host: list[HostReading], lo: float, hi: float, cores: int) -> str:
    """How busy the machine's cores were over [lo, hi), and how much of it was this process."""
    mine = [h for h in host if lo <= h.at < hi]
    if len(mine) < 2 or mine[-1].total <= mine[0].total:
        return "host: no samples"
    a, z = mine[0], mine[-1]
    busy, own = (z.busy - a.busy) / (z.total - a.total), (z.own_s - a.own_s) / (z.at - a.at)
    return f"host {busy:.0%} busy of {cores} cores (this process {own / cores:.0%})"


def first_round(migrations: list[dict[str, Any]], wall0: float) -> list[dict[str, Any]]:
    """The hot-spot migrations of the first mitigating tick, times since the run's start."""
    first = min((float(m["started_at"]) for m in migrations), default=0.0)
    return [
        m | {"start": m["started_at"] - wall0, "end": (m["finished_at"] or 0.0) - wall0}
        for m in migrations
        if m["started_at"] - first < REAP_S
    ]


def finished(round1: list[dict[str, Any]]) -> bool:
    """A round of migrations started and none of it is still running."""
    return bool(round1) and all(m["state"] != "running" for m in round1)


# ---- the run ----


async def call(gw: Gateway, name: str, event: dict[str, Any]) -> tuple[int, float]:
    """One call: its HTTP status (0: the request failed) and how long it took, ms."""
    started = time.perf_counter()
    status, _ = await gw.invoke(name, event)
    return status, (time.perf_counter() - started) * 1000


async def hot_spot_migrations(gw: Gateway) -> list[dict[str, Any]]:
    """The hot-spot migrations `GET /v1/migrations` lists."""
    async with gw.http.get(f"{gw.url}/v1/migrations") as r:
        return [m for m in (await r.json())["migrations"] if m["reason"] == "hot-spot"]


@dataclass
class Run:
    """What one run saw (times in seconds since its start)."""

    burn_at: float
    ended: float
    source: str
    receiver: str
    placed: Counter[str]
    ticks: list[tuple[float, int, float]]
    burns: list[tuple[float, int, float]]
    watched: WatchedHotSpots
    migrations: list[dict[str, Any]]
    wall0: float


async def burn_run(gw: Gateway, setup: Setup) -> Run:
    """Baseline, burn until the first mitigation has finished (or the limit), then after."""
    await gw.deploy("neighbour", source("neighbour"))
    await gw.deploy("burn", BURN)
    await call(gw, "neighbour", {})
    await asyncio.gather(*(call(gw, "burn", {"cpu_ms": 1}) for _ in range(setup.clients)))
    placed = Counter(f"{s.spec.name} on {s.node}" for s in gw.invoker.containers() if s.spec)
    nodes, tracker = gw.invoker.nodes, gw.invoker.hot_spots
    assert nodes is not None and tracker is not None, "hot-spot mitigation is off"
    source_node = next(s.node for s in gw.invoker.containers(name="neighbour"))
    assert source_node is not None
    receiver = next(n for n in nodes.nodes if n != source_node)
    t0, wall0 = time.perf_counter(), time.time()
    watched = WatchedHotSpots(nodes, tracker.config, t0)
    gw.invoker.hot_spots = watched
    stop = asyncio.Event()
    ticks: list[tuple[float, int, float]] = []
    burns: list[tuple[float, int, float]] = []

    def now() -> float:
        return time.perf_counter() - t0

    async def neighbour() -> None:
        while not stop.is_set():
            at = now()
            ticks.append((at, *await call(gw, "neighbour", {})))
            await asyncio.sleep(NEIGHBOUR_GAP_S)

    async def burner() -> None:
        while not stop.is_set():
            at = now()
            burns.append((at, *await call(gw, "burn", {"cpu_ms": setup.cpu_ms})))
            await asyncio.sleep(max(0.0, at + setup.period_s - now()))

    tasks = [asyncio.create_task(neighbour())]
    await asyncio.sleep(setup.baseline_s)
    burn_at = now()
    tasks += [asyncio.create_task(burner()) for _ in range(setup.clients)]
    end, mitigated = burn_at + setup.limit_s, False
    while now() < end:
        if not mitigated and finished(first_round(await hot_spot_migrations(gw), wall0)):
            end, mitigated = now() + setup.after_s, True  # watch the node cool
        await asyncio.sleep(0.1)
    ended = now()
    stop.set()
    await asyncio.gather(*tasks)
    migrations = await hot_spot_migrations(gw)
    return Run(burn_at, ended, source_node, receiver, placed, ticks, burns, watched, migrations,
               wall0)  # fmt: skip


# ---- the report ----


def timeline(run: Run) -> tuple[float | None, float | None, float | None]:
    """Seconds since the run's start when the source was seen hot, the first hot-spot
    migrations started and they all finished (None: did not happen)."""
    b = run.burn_at
    hot = next(
        (r.at for r in run.watched.readings if r.node == run.source and r.hot and r.at >= b), None
    )
    round1 = first_round(run.migrations, run.wall0)
    started = min(m["start"] for m in round1) if round1 else None
    ok = finished(round1) and all(m["state"] == "done" for m in round1)
    done = max(m["end"] for m in round1) if ok else None
    return hot, started, done


def print_pressure(run: Run, setup: Setup, label: str, lo: float, hi: float) -> None:
    samples = between(run.watched.readings, run.source, lo, hi)
    print(f"  source pressure {label}: {pressure_summary(samples, setup.hot_above)}")
    print(f"    meanwhile {host_summary(run.watched.host, lo, hi, os.cpu_count() or 1)}")


def print_neighbour(run: Run, label: str, lo: float, hi: float) -> None:
    print(f"  neighbour {label:7s} ({lo:4.1f}-{hi:4.1f} s): {calls_summary(run.ticks, lo, hi)}")


def print_cooling(run: Run, setup: Setup, done: float) -> None:
    """Whether the source stayed below the cool threshold for a whole cool window after
    the move, and how hot the receiver got."""
    after = between(run.watched.readings, run.source, done, run.ended)
    cool = longest_run(after, lambda p: p < setup.cool_below)
    median = statistics.median(r.pressure for r in after) if after else 0.0
    receiver = between(run.watched.readings, run.receiver, done, run.ended)
    print(
        f"  source cooled: {'yes' if cool >= setup.window_s else 'NO'} (below "
        f"{setup.cool_below:g} for {cool:.1f} s of {run.ended - done:.1f} s after, median "
        f"{median:.2f})\n  receiver after: {pressure_summary(receiver, setup.hot_above)}"
    )


def report(setup: Setup, run: Run) -> bool:
    """Print the run's figures; True if the node was mitigated."""
    b = run.burn_at
    hot, started, done = timeline(run)
    demand = setup.clients * setup.cpu_ms / 1000 / setup.period_s
    print(
        f"hot spot: {setup.clients} clients each asking {setup.cpu_ms} ms of CPU every "
        f"{setup.period_s:g} s ({demand:.2f} vCPU) of a 1-vCPU node; hot above "
        f"{setup.hot_above:g} for {setup.window_s:g} s, cool below {setup.cool_below:g} for "
        f"{setup.window_s:g} s, sampled every {REAP_S:g} s"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    placed = ", ".join(f"{n} {what}" for what, n in sorted(run.placed.items()))
    print(f"  containers: {placed}; load average {load}")
    print_pressure(run, setup, "before the burn", 0, b)
    print_pressure(run, setup, "burning until hot", b, hot if hot is not None else run.ended)
    for label, at in (("seen hot", hot), ("moves started", started), ("moves finished", done)):
        if at is not None:
            print(f"  {label + ':':19s} {at - b:5.1f} s after the burn started")
    print_neighbour(run, "before", 0, b)
    print_neighbour(run, "during", b, done if done is not None else run.ended)
    if done is not None:
        print_neighbour(run, "after", done, run.ended)
    failed_n = sum(1 for _, s, _ in run.ticks if s != 200)
    failed_b = sum(1 for _, s, _ in run.burns if s != 200)
    burn_ms = percentile([ms for _, _, ms in run.burns], 50) if run.burns else 0.0
    print(
        f"  failed calls: neighbour {failed_n} of {len(run.ticks)}, burn {failed_b} of "
        f"{len(run.burns)} (a burn call took {burn_ms / 1000:.1f} s, p50)"
    )
    for m in sorted(run.migrations, key=lambda m: float(m["started_at"])):
        c = m["cost"]
        print(
            f"    {m['function']} {m['source']} -> {m['target']} {m['state']} at "
            f"{m['started_at'] - run.wall0 - b:.1f} s: downtime {c['downtime_s'] * 1000:.1f} "
            f"ms, init {c['init_s'] * 1000:.0f} ms"
        )
    if done is None:
        why = (
            f"seen hot at {hot - b:.1f} s but no migration succeeded"
            if hot is not None
            else f"the node never stayed above {setup.hot_above:g} for a whole "
            f"{setup.window_s:g} s window (longest stretch: see the pressure above)"
        )
        print(f"  NOT MITIGATED in {run.ended - b:.0f} s of burning: {why}")
        return False
    print_cooling(run, setup, done)
    return True


async def main(setup: Setup) -> bool:
    async with two_nodes(
        "nimbus-hotspot-",
        NODE,
        hot_spot_above=setup.hot_above,
        hot_spot_below=setup.cool_below,
        hot_spot_window_s=setup.window_s,
        hot_spot_cool_window_s=setup.window_s,
        reap_interval_s=REAP_S,
        min_node_age_s=3600.0,
    ) as gw:
        run = await burn_run(gw, setup)
    return report(setup, run)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, dest, kind, default, what in (
        ("--window", "window_s", float, 2.0, "s above --hot-above (and below --cool-below)"),
        ("--hot-above", "hot_above", float, 0.85, "node pressure"),
        ("--cool-below", "cool_below", float, 0.70, "node pressure"),
        ("--clients", "clients", int, 4, "burning clients"),
        ("--cpu-ms", "cpu_ms", int, 300, "CPU time per burn call"),
        ("--period", "period_s", float, 1.0, "each client's period, s"),
        ("--baseline", "baseline_s", float, 5.0, "s before the burn"),
        ("--limit", "limit_s", float, 60.0, "longest burn, s"),
        ("--after", "after_s", float, 12.0, "s watched after mitigation"),
    ):
        parser.add_argument(flag, dest=dest, type=kind, default=default, help=what)
    sys.exit(0 if asyncio.run(main(Setup(**vars(parser.parse_args())))) else 1)
