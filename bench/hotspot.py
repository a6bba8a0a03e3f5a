"""Hot-spot mitigation at run time: a CPU-bound function saturates one node; how long until
it is mitigated, and what a neighbour function on that node sees before, during and after.

Nimbus runs in this process on the real Docker engine with two local cgroup nodes of 1 vCPU
(first-fit: everything starts on the first). A no-op neighbour is called at a steady rate
throughout; after a baseline phase, two clients call a CPU-bound function back to back
(two containers on the first node, together all of its vCPU). The maintenance loop samples
the node cgroups' CPU every `reap_interval_s`, marks the node hot after `--window` s above
0.85, and migrates the busiest container to the other node (make-before-break). Printed:
time from the burn's start until the migration is done, the neighbour's p50/p99 per phase
(baseline = before the burn, same run), failed calls (target 0) and the migrations.

    .venv/bin/python bench/hotspot.py [--window 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from common import percentile
from in_process import Gateway, source, two_nodes

NODE = ("onecpu", 1.0, 1024, "0.01")
BURN = """
def handler(event):
    n = 0
    for i in range(int(event.get("loops", 20_000_000))):
        n += i
    return n
"""


async def call(gw: Gateway, name: str, event: dict[str, Any]) -> tuple[int, float]:
    started = time.perf_counter()
    status, _ = await gw.invoke(name, event)
    return status, (time.perf_counter() - started) * 1000


async def migrations(gw: Gateway) -> dict[str, Any]:
    async with gw.http.get(f"{gw.url}/v1/migrations") as r:
        return dict(await r.json())


def summary(samples: list[tuple[float, int, float]], lo: float, hi: float) -> str:
    mine = [(s, ms) for at, s, ms in samples if lo <= at < hi]
    ok = [ms for s, ms in mine if s == 200]
    if not ok:
        return "no calls"
    failed = len(mine) - len(ok)
    return (
        f"{len(mine):4d} calls, {failed} failed, p50 {percentile(ok, 50):6.2f} ms, "
        f"p99 {percentile(ok, 99):7.2f} ms"
    )


async def main(window: float, seconds: float) -> None:
    async with two_nodes(
        "nimbus-hotspot-",
        NODE,
        hot_spot_window_s=window,
        hot_spot_cool_window_s=window,
        reap_interval_s=0.5,
        min_node_age_s=3600.0,
    ) as gw:
        await gw.deploy("neighbour", source("neighbour"))
        await gw.deploy("burn", BURN)
        await call(gw, "neighbour", {})
        await asyncio.gather(call(gw, "burn", {"loops": 1}), call(gw, "burn", {"loops": 1}))
        t0 = time.perf_counter()
        stop = asyncio.Event()
        ticks: list[tuple[float, int, float]] = []
        burns: list[int] = []

        async def neighbour() -> None:
            while not stop.is_set():
                at = time.perf_counter() - t0
                status, ms = await call(gw, "neighbour", {})
                ticks.append((at, status, ms))
                await asyncio.sleep(0.02)

        async def burner() -> None:
            while not stop.is_set():
                burns.append((await call(gw, "burn", {}))[0])

        base = seconds / 4
        tasks = [asyncio.create_task(neighbour())]
        await asyncio.sleep(base)
        burn_at = time.perf_counter() - t0
        tasks += [asyncio.create_task(burner()) for _ in range(2)]
        mitigated_at = None
        while time.perf_counter() - t0 < seconds:
            listing = await migrations(gw)
            done = [m for m in listing["migrations"] if m["state"] == "done"]
            if done and mitigated_at is None:
                mitigated_at = time.perf_counter() - t0
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*tasks)
        listing = await migrations(gw)

    end = mitigated_at if mitigated_at is not None else seconds
    print(f"hot spot: 2 CPU-bound callers on a 1-vCPU node, window {window:g} s")
    print(f"  neighbour before  (0-{burn_at:.1f} s):   {summary(ticks, 0, burn_at)}")
    print(f"  neighbour during  ({burn_at:.1f}-{end:.1f} s): {summary(ticks, burn_at, end)}")
    print(f"  neighbour after   ({end:.1f}-{seconds:g} s): {summary(ticks, end, seconds)}")
    if mitigated_at is None:
        print("  not mitigated within the run")
    else:
        print(f"  time until mitigated: {(mitigated_at - burn_at) * 1000:.0f} ms after the burn")
    print(f"  burn calls: {len(burns)}, failed {sum(1 for s in burns if s != 200)}")
    for m in listing["migrations"]:
        c = m["cost"]
        print(
            f"    {m['function']} {m['source']} -> {m['target']} {m['reason']} {m['state']}: "
            f"downtime {c['downtime_s'] * 1000:.1f} ms, init {c['init_s'] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.window, args.seconds))
