"""Live migration under load: a node drained while a steady stream of warm calls runs.

Nimbus runs in this process on the real Docker engine with two local cgroup nodes
(first-fit, so every container starts on the first). A few functions are warmed, then an
open-loop stream of calls (`--rate` per second, spread over the functions, loopback only,
bounded in flight) runs for `--seconds`; a third of the way in, the first node is drained
through `POST /v1/nodes/{id}/drain`, which migrates its warm containers to the second node
(make-before-break). Printed, with the same run's before-drain phase as the baseline:

- calls failed (target 0) and cold starts, before / during / after the drain;
- p50 and p99 latency before / during / after;
- per migrated container: downtime (time no container could serve its function), init on
  the target, CPU at the source and target (cgroups), bytes moved (the code /init sent);
- time to empty the node (drain request until the node is released).

    .venv/bin/python bench/migration.py [--rate 200] [--seconds 10] [--functions 4]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

from common import percentile
from in_process import Gateway, source, two_nodes

NODE = ("bench", 2.0, 1024, "0.01")
MAX_IN_FLIGHT = 64


@dataclass
class Call:
    at: float  # seconds since the stream started
    ms: float
    status: int
    cold: bool


async def one(gw: Gateway, name: str, t0: float, calls: list[Call]) -> None:
    started = time.perf_counter()
    status, cold = await gw.invoke(name, {})
    done = time.perf_counter()
    calls.append(Call(started - t0, (done - started) * 1000, status, cold))


async def stream(
    gw: Gateway, names: list[str], rate: float, seconds: float, t0: float, calls: list[Call]
) -> int:
    """Open loop: one call every 1/rate s (round-robin over the functions); returns how
    many were skipped because MAX_IN_FLIGHT were already waiting."""
    tasks: set[asyncio.Task[None]] = set()
    skipped = 0
    n = 0
    while (now := time.perf_counter() - t0) < seconds:
        due = n / rate
        if due > now:
            await asyncio.sleep(due - now)
        if len(tasks) >= MAX_IN_FLIGHT:
            skipped += 1
        else:
            task = asyncio.create_task(one(gw, names[n % len(names)], t0, calls))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    return skipped


async def nodes(gw: Gateway) -> dict[str, Any]:
    async with gw.http.get(f"{gw.url}/v1/nodes") as r:
        return {n["id"]: n for n in (await r.json())["nodes"]}


def phase(calls: list[Call], lo: float, hi: float) -> str:
    mine = [c for c in calls if lo <= c.at < hi]
    if not mine:
        return "no calls"
    ok = [c.ms for c in mine if c.status == 200]
    failed = sum(1 for c in mine if c.status != 200)
    cold = sum(1 for c in mine if c.cold)
    p50 = percentile(ok, 50) if ok else float("nan")
    p99 = percentile(ok, 99) if ok else float("nan")
    return (
        f"{len(mine):5d} calls, {failed} failed, {cold} cold, p50 {p50:6.2f} ms, p99 {p99:6.2f} ms"
    )


async def main(rate: float, seconds: float, functions: int) -> None:
    async with two_nodes(
        "nimbus-migration-",
        NODE,
        hot_spot_mitigation=False,
        keep_alive_policy="fixed",
        keep_alive_s=600.0,
        min_node_age_s=3600.0,  # no consolidation of its own during the run
    ) as gw:
        names = [f"steady{i}" for i in range(functions)]
        for name in names:
            await gw.deploy(name, source(name))
        first, second = sorted(await nodes(gw))
        # Warm: two containers per function on the first node (first-fit).
        for _ in range(2):
            await asyncio.gather(*(one(gw, n, time.perf_counter(), []) for n in names * 2))
        on_first = len((await nodes(gw))[first]["containers"])
        calls: list[Call] = []
        t0 = time.perf_counter()
        runner = asyncio.create_task(stream(gw, names, rate, seconds, t0, calls))
        await asyncio.sleep(seconds / 3)
        drain_at = time.perf_counter() - t0
        async with gw.http.post(f"{gw.url}/v1/nodes/{first}/drain") as r:
            body = await r.json()
        started = len(body.get("migrations", []))
        deadline = time.perf_counter() + 60  # bounded: a stuck drain ends the run
        while time.perf_counter() < deadline:
            if first not in await nodes(gw):
                break
            await asyncio.sleep(0.05)
        empty_at = time.perf_counter() - t0
        skipped = await runner
        async with gw.http.get(f"{gw.url}/v1/migrations") as r:
            listing = await r.json()

    moves = [m for m in listing["migrations"] if m["source"] == first]
    print(f"migration under load: {rate:g} calls/s for {seconds:g} s over {functions} functions")
    print(f"  node {first}: {on_first} warm containers; {started} migrations to {second}")
    print(f"  before (0-{drain_at:.1f} s):  {phase(calls, 0, drain_at)}")
    print(f"  during ({drain_at:.1f}-{empty_at:.1f} s): {phase(calls, drain_at, empty_at)}")
    print(f"  after  ({empty_at:.1f}-{seconds:g} s): {phase(calls, empty_at, seconds)}")
    print(f"  skipped by the in-flight bound: {skipped}")
    print(f"  time to empty the node: {(empty_at - drain_at) * 1000:.0f} ms")
    print(f"  migrations: {listing['total']} total, {listing['failed']} failed")
    for m in sorted(moves, key=lambda m: m["id"]):
        c = m["cost"]
        print(
            f"    {m['function']:>16}  {m['state']:>6}  downtime {c['downtime_s'] * 1000:5.1f} ms"
            f"  init {c['init_s'] * 1000:6.1f} ms  cpu src {c['cpu_source_s'] * 1000:6.1f} ms"
            f"  cpu tgt {c['cpu_target_s'] * 1000:6.1f} ms  bytes {c['bytes_moved']}"
            f"  total {m['duration_s'] * 1000 if m['duration_s'] else float('nan'):6.0f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--functions", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.functions))
