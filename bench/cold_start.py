"""Cold-start latency: with a stem cell, and true cold starts against the raw Docker floor.

Runs Nimbus in this process (gateway + invoker on the real Docker engine) so it can see
the pool's state, and measures, in the same run:

(a) stem cell: each round deploys a new version of a no-op function (new source, so no
    warm container holds it), waits until the stem cells are stocked and the pool is
    quiet, then times the first call through the gateway. Reported as that latency minus
    the median warm latency of the same function (warm calls taken in the same rounds).
    Target: <= 10 ms at p50.
(b) true cold start (no stem cells): the first call of a new version through the gateway
    vs the floor, timed with the docker SDK: create + start a container with exactly the
    production arguments (`container_kwargs`), wait for its socket, POST /init, POST /run
    over the unix socket. Two floors: `network=none` and joining a netns holder (what
    Nimbus does). Rounds of the three are interleaved in a shuffled order (noisy host).
    Target: Nimbus median <= 1.15x the floor median.

    .venv/bin/python bench/cold_start.py [--rounds 15] [--warm-calls 50] [--part stem|cold|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import docker
from common import percentile
from docker_floor import BENCH_LABEL, Direct, Floor
from in_process import MEMORY_MB, RUNTIME, Gateway, nimbus, source

from invoker.drivers.docker import holder_kwargs
from invoker.images import build_runtime_images
from invoker.service import Invoker


async def timed_call(gw: Gateway, name: str) -> tuple[float, dict[str, str]]:
    """Latency in ms of one call seen by the client, and the response headers."""
    t = time.perf_counter()
    async with gw.http.post(f"{gw.url}/v1/functions/{name}/invoke", json={"x": 1}) as r:
        await r.read()
        elapsed = (time.perf_counter() - t) * 1000
        assert r.status == 200, r.status
        return elapsed, dict(r.headers)


async def settle(invoker: Invoker, stems: int, timeout: float = 60.0) -> None:
    """Wait until `stems` stem cells are ready and nothing is starting or being removed."""
    deadline = time.monotonic() + timeout
    while True:
        states = invoker.container_states()
        if states["prewarm"] >= stems and states["initializing"] == 0 and states["removing"] == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the pool did not settle in {timeout:g} s: {states}")
        await asyncio.sleep(0.02)


def row(name: str, samples: list[float]) -> str:
    return (
        f"{name:<34}{percentile(samples, 50):>9.1f}{percentile(samples, 90):>9.1f}"
        f"{min(samples):>9.1f}{statistics.fmean(samples):>9.1f}"
    )


HEADER = f"{'':<34}{'p50':>9}{'p90':>9}{'min':>9}{'mean':>9}"


# ---- (a) cold start with a stem cell ----


async def stem_cell_rounds(args: argparse.Namespace, data_dir: Path, floor: Floor) -> None:
    stems = 2
    rng = random.Random(args.seed)
    nim: dict[str, list[float]] = {k: [] for k in ("warm", "warm_run", "cold", "init", "run")}
    ref: dict[str, list[float]] = {k: [] for k in ("warm_run", "init", "run")}
    stem_served = 0
    async with nimbus(data_dir, stem_cells=((RUNTIME, MEMORY_MB, stems),)) as gw:

        async def warm_call() -> None:
            latency, headers = await timed_call(gw, "f")
            nim["warm"].append(latency)
            nim["warm_run"].append(float(headers["X-Nimbus-Duration-Ms"]))

        async def nimbus_round(i: int) -> None:
            nonlocal stem_served
            await gw.deploy("f", source(f"stem round {i}"))
            await settle(gw.invoker, stems)
            await asyncio.sleep(0.3)  # let the refill's docker work drain off the CPU
            before = gw.invoker.container_states()["prewarm"]
            latency, headers = await timed_call(gw, "f")
            assert headers["X-Nimbus-Cold-Start"] == "true", headers
            stem_served += gw.invoker.container_states()["prewarm"] == before - 1
            nim["cold"].append(latency)
            nim["init"].append(float(headers["X-Nimbus-Init-Ms"]))
            nim["run"].append(float(headers["X-Nimbus-Duration-Ms"]))
            for _ in range(5):
                await warm_call()

        async def direct_round(i: int) -> None:
            # A stem cell as the pool starts one (network=none), specialised directly.
            started = await floor.start(netns=False)
            try:
                await asyncio.sleep(0.3)
                async with Direct(started.socket) as direct:
                    init_ms, run_ms = await direct.init_and_run()
                    ref["init"].append(init_ms)
                    ref["run"].append(run_ms)
                    for _ in range(5):
                        ref["warm_run"].append(await direct.run())
            finally:
                await asyncio.to_thread(floor.remove, started.name)

        await gw.deploy("f", source("v0"))
        await settle(gw.invoker, stems)
        for _ in range(10):  # warm up the connection paths, not counted
            await timed_call(gw, "f")
        for _ in range(args.warm_calls):
            await warm_call()
        for i in range(args.rounds):
            pair = [nimbus_round, direct_round]
            rng.shuffle(pair)
            for one in pair:
                await one(i)
        # One store round trip (a thread-pool hop to SQLite), as the first call pays it.
        sha = str((await gw.deploy("f", source("store probe")))["code_sha256"])
        store_ms = []
        for _ in range(30):
            t = time.perf_counter()
            assert await gw.store.get_code(sha) is not None
            store_ms.append((time.perf_counter() - t) * 1000)

    warm_p50 = percentile(nim["warm"], 50)
    extra = [c - warm_p50 for c in nim["cold"]]
    rest = [c - i - r for c, i, r in zip(nim["cold"], nim["init"], nim["run"], strict=True)]
    ref_warm = percentile(ref["warm_run"], 50)
    ref_extra = [i + r - ref_warm for i, r in zip(ref["init"], ref["run"], strict=True)]
    print(
        f"\n(a) cold start WITH a stem cell: {args.rounds} rounds, "
        f"{len(nim['warm'])} warm calls through the gateway"
    )
    print(f"    {stem_served}/{args.rounds} first calls were served by a stem cell")
    print(HEADER + "   (ms)")
    print(row("warm call (gateway)", nim["warm"]))
    print(row("  of which /run (header)", nim["warm_run"]))
    print(row("first call, stem cell (gateway)", nim["cold"]))
    print(row("  of which /init (header)", nim["init"]))
    print(row("  of which first /run (header)", nim["run"]))
    print(row("  the rest (gateway, store)", rest))
    print(row("first call minus warm p50", extra))
    print("reference, straight to an idle stem container (no gateway, no store):")
    print(row("  /init", ref["init"]))
    print(row("  first /run", ref["run"]))
    print(row("  warm /run", ref["warm_run"]))
    print(row("  /init + first /run - warm p50", ref_extra))
    print(row("one store read (get_code)", store_ms))
    p50 = percentile(extra, 50)
    verdict = "met" if p50 <= 10 else "MISSED"
    print(
        f"cold-with-stem minus warm: p50 {p50:.1f} ms, p90 {percentile(extra, 90):.1f} ms "
        f"(target <= 10 ms at p50: {verdict}); the proxy alone costs "
        f"{percentile(ref_extra, 50):.1f} ms of it at p50"
    )


# ---- (b) true cold start vs the docker floor ----


async def true_cold_rounds(args: argparse.Namespace, data_dir: Path, floor: Floor) -> None:
    results: dict[str, list[dict[str, float]]] = {"nimbus": [], "none": [], "netns": []}
    rng = random.Random(args.seed)
    async with nimbus(data_dir, stem_cells=()) as gw:
        version = 0

        async def nimbus_once() -> dict[str, float]:
            nonlocal version
            version += 1
            await gw.deploy("g", source(f"cold round {version}"))
            await settle(gw.invoker, 0)
            latency, headers = await timed_call(gw, "g")
            assert headers["X-Nimbus-Cold-Start"] == "true", headers
            return {
                "total": latency,
                "init": float(headers["X-Nimbus-Init-Ms"]),
                "run": float(headers["X-Nimbus-Duration-Ms"]),
            }

        runs: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {
            "nimbus": nimbus_once,
            "none": lambda: floor.cold(netns=False),
            "netns": lambda: floor.cold(netns=True),
        }
        for run in runs.values():  # warm-up (tenant netns holder, image layers): not counted
            await run()
        for _ in range(args.rounds):
            order = list(runs)
            rng.shuffle(order)
            for which in order:
                await asyncio.sleep(0.2)  # let the previous removal drain off the CPU
                results[which].append(await runs[which]())
        warm = [(await timed_call(gw, "g"))[0] for _ in range(args.warm_calls)]

    def col(which: str, phase: str) -> list[float]:
        return [r[phase] for r in results[which]]

    def p50(which: str, phase: str) -> float:
        return percentile(col(which, phase), 50)

    print(f"\n(b) TRUE cold start (no stem cells): {args.rounds} interleaved rounds each")
    print(HEADER + "   (ms, create -> first result)")
    print(row("Nimbus first call (gateway)", col("nimbus", "total")))
    print(row("  of which start+/init (header)", col("nimbus", "init")))
    print(row("  of which /run (header)", col("nimbus", "run")))
    print(row("Nimbus warm call (same run)", warm))
    print(row("floor, network=none", col("none", "total")))
    print(row("floor, netns holder", col("netns", "total")))
    print("floor phases, p50 ms:")
    phases = ("create", "start", "socket", "init", "run", "inspect")
    print(f"{'':<14}" + "".join(f"{p:>9}" for p in phases))
    for which in ("none", "netns"):
        print(f"{which:<14}" + "".join(f"{p50(which, p):>9.1f}" for p in phases))
    print(
        "  (inspect is not in the floor total: containers.run() inspects between create and start)"
    )
    nim = p50("nimbus", "total")
    for which, label in (("netns", "netns-holder floor"), ("none", "network=none floor")):
        base = p50(which, "total")
        verdict = "met" if nim / base <= 1.15 else "MISSED"
        print(
            f"ratio Nimbus/{label} (p50): {nim:.1f} / {base:.1f} ms = {nim / base:.2f}x "
            f"(target <= 1.15x: {verdict})"
        )


async def bench(args: argparse.Namespace, tmp: Path) -> None:
    client = docker.from_env(timeout=120)
    images = await asyncio.to_thread(build_runtime_images, client, lambda line: None)
    image = images[RUNTIME]
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    holder_name = f"nbbench-ns-{os.getpid()}"
    holder = client.containers.run(**holder_kwargs(holder_name, image, {BENCH_LABEL: "1"}))
    floor = Floor(client, image, tmp / "floor", holder.id or holder_name)
    try:
        if args.part in ("a", "stem", "both"):
            await stem_cell_rounds(args, tmp / "a", floor)
        if args.part in ("b", "cold", "both"):
            await true_cold_rounds(args, tmp / "b", floor)
    finally:
        for name in list(floor.names):
            floor.remove(name)
        holder.remove(force=True)
        client.close()
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warm-calls", type=int, default=50)
    parser.add_argument(
        "--part",
        choices=("stem", "cold", "both", "a", "b"),  # a and b: the older names of stem, cold
        default="both",
        help="stem: first call on a stem cell (a); cold: true cold start vs docker (b)",
    )
    parser.add_argument("--seed", type=int, default=1, help="order of interleaved rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as tmp:
        asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
