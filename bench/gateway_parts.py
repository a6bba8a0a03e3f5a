"""Where the gateway's CPU per warm call goes: the gateway with one part switched off.

    .venv/bin/python bench/gateway_parts.py [--rounds 3] [--seconds 4] [--parts record-write,...]

Starts `nimbus serve` (real Docker, one worker) once per part and round, each with that
part of its work replaced by nothing, deploys a no-op, warms its container, and reads the
gateway's CPU (all its threads, from /proc) per call over sequential calls and over 16
concurrent clients. `full` (nothing off) runs in every round beside the others, so each
part's saving is measured against a baseline of the same round; the medians over the
rounds are printed. A part switched off is not a configuration Nimbus offers: the records
it skips are lost, which is why this is a measuring tool and nothing else.

Parts:
- `record-write`: the SQLite commit of each batch of activation and usage rows (the rows
  are not even built);
- `metrics`: the request-duration histogram middleware;
- `middlewares`: the error, OpenWhisk-error and guard middlewares (auth stays);
- `cgroup`: the per-call cgroup reads (peak memory, CPU) and the freezer writes;
- `all`: the four together: what is left is aiohttp's server, auth, the invoker's call
  path and the runtime client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import free_port, wait_healthy, warm_serve_args
from invoke_latency import cpu_seconds, process_tree

ROOT = Path(__file__).resolve().parents[1]
KEY = "nmb_admin_bench_key"
NOOP = "def handler(event):\n    return event\n"
PARTS = ("record-write", "metrics", "middlewares", "cgroup")


def _replace(owner: Any, name: str, value: Any) -> None:
    """Set `owner.name`, which must exist: a part renamed in the code stops this bench
    rather than leaving the part on unnoticed."""
    if not hasattr(owner, name):
        raise SystemExit(f"{owner.__name__}.{name} is gone: update bench/gateway_parts.py")
    setattr(owner, name, value)


def switch_off(parts: set[str]) -> None:
    """Replace each named part of the gateway with nothing (before the app is built: it
    picks the middlewares up by these names)."""
    from aiohttp import web

    @web.middleware
    async def passthrough(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request)  # type: ignore[no-any-return]

    if "record-write" in parts:
        from invoker.store.sqlite.loop_writes import LoopWriter

        _replace(LoopWriter, "write", lambda self, batch: True)
    if "metrics" in parts:
        from gateway import metrics

        _replace(metrics, "measure", passthrough)
    if "middlewares" in parts:
        from gateway import middleware
        from gateway.openwhisk import errors as openwhisk_errors

        _replace(middleware, "errors", passthrough)
        _replace(middleware, "guard", passthrough)
        _replace(openwhisk_errors, "facade", passthrough)
    if "cgroup" in parts:
        from invoker.containers.cgroups import CallMeter
        from invoker.drivers.base import ContainerStats

        _replace(CallMeter, "start", lambda self: None)
        _replace(CallMeter, "stop", lambda self: ContainerStats(None, None))
        _replace(CallMeter, "freeze", lambda self: False)


def serve_without(parts: str, argv: list[str]) -> int:
    """`nimbus serve` with `parts` (comma-separated) switched off."""
    chosen = set(filter(None, parts.split(","))) - {"full"}
    if "all" in chosen:
        chosen = set(PARTS)
    unknown = chosen - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts: {sorted(unknown)}")
    sys.path.insert(0, str(ROOT))
    switch_off(chosen)
    from gateway.cli.commands import main

    sys.argv = ["nimbus", *argv]
    return main()


async def measure(url: str, pid: int, seconds: float) -> tuple[float, float]:
    """CPU ms per call of the gateway's processes: sequential, then 16 clients."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        body = {"handler": "main.handler", "code": {"source": NOOP}, "concurrency": 16}
        async with http.put(f"{url}/v1/functions/noop", json=body) as resp:
            assert resp.status in (200, 201), await resp.text()

        async def one() -> None:
            async with http.post(f"{url}/v1/functions/noop/invoke", json={"x": 1}) as resp:
                await resp.read()
                assert resp.status == 200, resp.status

        for _ in range(300):  # warm: the container, the caches, the keep-alive history
            await one()
        out = []
        for clients in (1, 16):
            pids = process_tree(pid)
            calls = 0
            stop = time.perf_counter() + seconds

            async def loop(stop: float = stop) -> None:
                nonlocal calls
                while time.perf_counter() < stop:
                    await one()
                    calls += 1

            before = cpu_seconds(pids)
            await asyncio.gather(*(loop() for _ in range(clients)))
            out.append((cpu_seconds(pids) - before) / calls * 1000)
        return out[0], out[1]


def one_run(parts: str, seconds: float) -> tuple[float, float]:
    """Start a gateway with `parts` off, measure it, stop it."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as tmp:
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-without",
                parts,
                *warm_serve_args(port, Path(tmp) / "d"),
            ],
            cwd=ROOT,
            env={**os.environ, "NIMBUS_ADMIN_KEY": KEY, "NIMBUS_WORKERS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, server)
            return asyncio.run(measure(url, server.pid, seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-without":
        sys.exit(serve_without(sys.argv[2], sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per load, per gateway")
    parser.add_argument("--parts", default=",".join((*PARTS, "all")), help="comma-separated")
    args = parser.parse_args()
    variants = ["full", *args.parts.split(",")]
    seq: dict[str, list[float]] = {v: [] for v in variants}
    load: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for variant in variants:
            s, c = one_run(variant, args.seconds)
            seq[variant].append(s)
            load[variant].append(c)
            print(f"round {r + 1}: {variant:<14} sequential {s:.3f} ms, 16 clients {c:.3f} ms")
    print(f"gateway CPU per warm call, median of {args.rounds} rounds (ms), and what the part")
    print("costs: the full gateway's figure less the figure with the part off")
    print(f"{'off':<14}{'sequential':>12}{'saved':>8}{'16 clients':>12}{'saved':>8}")
    base_s, base_c = statistics.median(seq["full"]), statistics.median(load["full"])
    for v in variants:
        s, c = statistics.median(seq[v]), statistics.median(load[v])
        print(f"{v:<14}{s:>12.3f}{base_s - s:>8.3f}{c:>12.3f}{base_c - c:>8.3f}")


if __name__ == "__main__":
    main()
