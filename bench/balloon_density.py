"""Ballooning on the real engine: how many idle warm 128 MB containers one 2 GiB node holds
with and without it, and what inflating a deflated container costs on the warm path.

Runs Nimbus in this process (Docker driver, one local cgroup node of 2 GiB, no stem cells,
a long fixed keep-alive) once per setting, in the same run:

- baseline: `balloon` off (every container holds its 128 MB);
- `balloon` on with `memory_overcommit` 2.0 (the cap the docs suggest) and 4.0.

Each run deploys distinct 128 MB functions and calls each new one once, waiting for the
idle ones to be deflated before the next, until the node is full: a call answered 429, or
one that evicted an idle container to fit (the overcommit cap, or resident memory, is
reached). It prints the warm containers the node held, their mean deflated limit and the
node's resident memory at that point.

Then, on the ballooned node: the warm-path cost of inflating (the invoker's own timing of
admission + the cgroup write, per call), warm call latency through the gateway on deflated
containers against full-size ones (same run), and the bare cgroup write (a pwrite on the
open memory.limit_in_bytes) timed over many rounds.

    .venv/bin/python bench/balloon_density.py [--max 80] [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import percentile
from in_process import Gateway, nimbus, source

from invoker.containers.slots import State
from invoker.images import build_runtime_images

IDLE_S = 0.6  # past the idle grace (0.3 s) and a maintenance round (0.2 s)
NODE_MB = 2048
NODE = (("node2g", 2.0, NODE_MB, "0.0208"),)
COMMON: dict[str, Any] = {
    "node_flavors": NODE,
    "min_nodes": 1,
    "max_nodes": 1,
    "stem_cells": (),
    "keep_alive_policy": "fixed",
    "keep_alive_s": 3600.0,
    "reap_interval_s": 0.2,
    "balloon_idle_grace_s": 0.3,
}


async def invoke(gw: Gateway, name: str) -> tuple[int, float]:
    """One call: (status, seconds through the gateway)."""
    started = time.perf_counter()
    async with gw.http.post(f"{gw.url}/v1/functions/{name}/invoke", json={}) as resp:
        await resp.read()
        return resp.status, time.perf_counter() - started


async def all_deflated(gw: Gateway, seconds: float = 10.0) -> None:
    """Wait until every idle container is deflated (no-op with ballooning off)."""
    balloons = gw.invoker.balloons
    if balloons is None:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        idle = [s for s in gw.invoker.slots.values() if s.state is State.IDLE]
        if all(balloons.deflated(s.id) for s in idle):
            return
        await asyncio.sleep(0.05)


def node_memory(gw: Gateway) -> tuple[int, int]:
    """(allocated, resident) MB of the one node."""
    nodes = gw.invoker.nodes
    assert nodes is not None
    (node,) = nodes.nodes.values()
    return node.allocated_memory_mb, node.resident_mb


async def fill(gw: Gateway, most: int) -> dict[str, Any]:
    """Warm one container per function until the node is full; what it held then."""
    held = 0
    for i in range(most):
        name = f"f{i}"
        await gw.deploy(name, source(name))
        status, _ = await invoke(gw, name)
        live = sum(1 for s in gw.invoker.slots.values() if s.state is not State.REMOVING)
        if status != 200 or live <= held:
            break  # refused, or an idle container had to go for it: the node is full
        held = live
        await all_deflated(gw)
    allocated, resident = node_memory(gw)
    balloons = gw.invoker.balloons
    limits = [balloons.limit_mb(s) for s in gw.invoker.slots.values()] if balloons else []
    return {
        "held": held,
        "allocated": allocated,
        "resident": resident,
        "mean_limit": statistics.fmean(limits) if limits else 128.0,
    }


async def warm_after_idle(gw: Gateway, held: int, calls: int) -> list[float]:
    """Warm calls through the gateway, each on a random one of the node's containers after
    the node sat idle past the idle grace (ballooned ones are deflated by then, and pay an
    inflation; without ballooning the same wait, full-size containers)."""
    rng = random.Random(7)
    out = []
    for _ in range(calls):
        await asyncio.sleep(IDLE_S)
        await all_deflated(gw)
        status, took = await invoke(gw, f"f{rng.randrange(held)}")
        assert status == 200
        out.append(took)
    return out


async def back_to_back(gw: Gateway, calls: int) -> list[float]:
    """Warm calls on one container, each right after the last (never deflated)."""
    out = []
    for _ in range(calls):
        status, took = await invoke(gw, "f0")
        assert status == 200
        out.append(took)
    return out


def bare_writes(gw: Gateway, rounds: int) -> list[float]:
    """The cgroup write alone: inflate one idle container's limit from its deflated size
    (deflating it back between rounds), timed around the pwrite."""
    balloons = gw.invoker.balloons
    assert balloons is not None
    slot = next(s for s in gw.invoker.slots.values() if balloons.deflated(s.id))
    assert slot.handle is not None
    meter = gw.invoker.driver.call_meter(slot.handle)
    assert meter is not None
    low = balloons.limit_mb(slot)
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        meter.set_memory_limit(slot.memory_mb)
        out.append(time.perf_counter() - started)
        meter.set_memory_limit(low)
    return out


def line(label: str, samples: list[float], unit: float = 1e6, name: str = "us") -> str:
    return (
        f"{label:<44} p50 {percentile(samples, 50) * unit:8.1f} {name}   "
        f"p99 {percentile(samples, 99) * unit:8.1f} {name}   n={len(samples)}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=80, help="most functions to warm per run")
    parser.add_argument("--calls", type=int, default=100, help="warm calls per path")
    args = parser.parse_args()
    import docker

    build_runtime_images(docker.from_env(), lambda line: None)
    runs = (
        ("off (baseline)", False, 1.0),
        ("on, overcommit 2.0", True, 2.0),
        ("on, overcommit 4.0", True, 4.0),
    )
    results: dict[str, dict[str, Any]] = {}
    timings: dict[str, list[float]] = {}
    for label, balloon, ratio in runs:
        with tempfile.TemporaryDirectory(prefix="nimbus-balloon-") as tmp:
            async with nimbus(
                Path(tmp) / "data", balloon=balloon, memory_overcommit=ratio, **COMMON
            ) as gw:
                results[label] = await fill(gw, args.max)
                print(f"{label}: {results[label]}", flush=True)
                if ratio > 2.0:
                    continue
                held = results[label]["held"]
                timings[label] = await warm_after_idle(gw, held, args.calls)
                if balloon:
                    assert gw.invoker.balloons is not None
                    timings["inflate"] = list(gw.invoker.balloons.inflations_s)
                    timings["back-to-back"] = await back_to_back(gw, args.calls)
                    timings["write"] = bare_writes(gw, 5000)

    print(f"\nIdle warm 128 MB containers on one {NODE_MB} MB node (same run):")
    for label, r in results.items():
        print(
            f"  ballooning {label:<20} {r['held']:4d} containers   "
            f"allocated {r['allocated']:5d} MB   resident {r['resident']:5d} MB   "
            f"mean limit {r['mean_limit']:.0f} MB"
        )
    base = results["off (baseline)"]["held"]
    for label, r in results.items():
        if label != "off (baseline)":
            print(f"  {label}: {r['held'] / base:.2f}x the baseline")
    print("\nInflating on the warm path (overcommit 2.0 run):")
    print("  " + line("inflate: admission + cgroup write", timings["inflate"]))
    print("  " + line("bare cgroup write (pwrite, open fd)", timings["write"]))
    print("Warm calls through the gateway (same run):")
    for label in ("off (baseline)", "on, overcommit 2.0"):
        print("  " + line(f"after {IDLE_S} s idle, ballooning {label}", timings[label], 1e3, "ms"))
    print("  " + line("back to back, never deflated", timings["back-to-back"], 1e3, "ms"))


if __name__ == "__main__":
    asyncio.run(main())
