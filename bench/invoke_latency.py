"""Warm invocation latency: through the gateway vs straight to the same container.

Starts `nimbus serve` (real Docker) in a subprocess, deploys a no-op function, warms one
container, then times N sequential calls through the gateway's HTTP API and N sequential
/run calls sent directly to that container's unix socket, in the same run. Prints p50/p99
of both and their ratio (the gateway's overhead), and, with --concurrency, throughput.

    .venv/bin/python bench/invoke_latency.py [--calls 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from common import percentile

ROOT = Path(__file__).resolve().parents[1]
KEY = "nmb_admin_bench_key"
NOOP = "def handler(event):\n    return event\n"


async def timed(n: int, call: Callable[[], Awaitable[None]]) -> list[float]:
    """Latencies in ms of n sequential calls."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def throughput(seconds: float, clients: int, call: Callable[[], Awaitable[None]]) -> float:
    """Calls per second with `clients` concurrent loops, for a bounded time."""
    done = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return done / (time.perf_counter() - start)


async def bench(args: argparse.Namespace, url: str, data_dir: Path) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {
            "handler": "main.handler",
            "code": {"source": NOOP},
            "concurrency": args.concurrency,
        }
        async with http.put(f"{url}/v1/functions/noop", json=body) as resp:
            assert resp.status in (200, 201), await resp.text()
        async with http.post(f"{url}/v1/functions/noop/invoke", json={}) as resp:
            assert resp.status == 200, await resp.text()
        sockets = list((data_dir / "run").glob("*/p.sock"))
        assert len(sockets) == 1, sockets
        direct = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sockets[0])))

        async def via_gateway() -> None:
            async with http.post(f"{url}/v1/functions/noop/invoke", json={"x": 1}) as resp:
                await resp.read()
                assert resp.status == 200

        async def to_container() -> None:
            payload = {
                "value": {"x": 1},
                "activation_id": "bench",
                "deadline": int((time.time() + 30) * 1000),
            }
            async with direct.post("http://container/run", json=payload) as resp:
                await resp.read()
                assert resp.status == 200

        async with direct:
            await timed(100, via_gateway)  # warm both paths
            await timed(100, to_container)
            gw = await timed(args.calls, via_gateway)
            dc = await timed(args.calls, to_container)
            print(f"warm latency over {args.calls} sequential calls (ms)")
            print(f"{'path':<22}{'p50':>9}{'p99':>9}{'mean':>9}")
            for name, s in (("gateway", gw), ("direct to container", dc)):
                print(
                    f"{name:<22}{percentile(s, 50):>9.3f}{percentile(s, 99):>9.3f}"
                    f"{statistics.fmean(s):>9.3f}"
                )
            print(
                f"ratio gateway/direct: p50 {percentile(gw, 50) / percentile(dc, 50):.2f}x, "
                f"p99 {percentile(gw, 99) / percentile(dc, 99):.2f}x"
            )
            if args.concurrency > 1:
                t_gw = await throughput(args.seconds, args.concurrency, via_gateway)
                t_dc = await throughput(args.seconds, args.concurrency, to_container)
                print(
                    f"throughput, {args.concurrency} concurrent clients, {args.seconds:g} s each:"
                    f" gateway {t_gw:.0f}/s, direct {t_dc:.0f}/s, ratio {t_gw / t_dc:.2f}x"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1, help="also measure throughput")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as tmp:
        data_dir = Path(tmp) / "d"
        env = {**os.environ, "NIMBUS_ADMIN_KEY": KEY}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--port",
                str(args.port),
                "--data-dir",
                str(data_dir),
                "--driver",
                "docker",
                "--stem-cells",
                "0",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/healthz") as r:
                        json.loads(r.read())
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("nimbus serve did not start") from None
                    time.sleep(0.1)
            asyncio.run(bench(args, url, data_dir))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
