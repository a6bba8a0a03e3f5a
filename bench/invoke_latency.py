"""Warm invocation latency: through the gateway vs straight to the same container.

Starts `nimbus serve` (real Docker) in a subprocess, deploys a no-op function, warms one
container, then times N sequential calls through the gateway's HTTP API and N sequential
/run calls sent directly to that container's unix socket, in the same run. Prints p50/p99
of both and their ratio (the gateway's overhead), and, with --concurrency, throughput.

Three more paths are relays that do none of the gateway's work (bench/relays.py): the
bare aiohttp relay (aiohttp's server and client, the issue's yardstick), the lean relay
(aiohttp's server and Nimbus's runtime client: the gateway's stack) and the raw relay
(httptools on an asyncio protocol: the least any Python relay does per call). With
--alternatives, two more: uvicorn with a bare ASGI callable, and uvicorn with Starlette,
the servers the public API could move to instead of aiohttp's.

    .venv/bin/python bench/invoke_latency.py [--calls 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import docker
from accounting import accounted
from common import percentile, wait_healthy, warm_serve_args
from relays import ALTERNATIVES, start_relay

from invoker.containers.cgroups import thaw_container

ROOT = Path(__file__).resolve().parents[1]
KEY = "nmb_admin_bench_key"
NOOP = "def handler(event):\n    return event\n"
ALTERNATIVE_NAMES = {"asgi": "uvicorn, bare ASGI", "starlette": "uvicorn+starlette"}


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a gateway with workers is several processes)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes used so far (all their threads), from /proc."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


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


def thawer(container_name: str) -> Callable[[], None]:
    """Thaws the function's container (the gateway freezes it whenever it is idle)."""
    client = docker.from_env()
    info = client.api.inspect_container(container_name)
    client.close()
    container_id, parent = info["Id"], info["HostConfig"].get("CgroupParent") or None

    def thaw() -> None:
        time.sleep(0.1)  # past the gateway's freeze grace: it freezes nothing after this
        thaw_container(container_id, parent)

    return thaw


async def bench(args: argparse.Namespace, url: str, data_dir: Path, server_pid: int) -> None:
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
        thaw = thawer(sockets[0].parent.name)
        thaw()  # the relay's start-up probe reaches the container too
        kinds = ("relay", "lean", "raw") + (ALTERNATIVES if args.alternatives else ())
        relays = {kind: start_relay(sockets[0], kind) for kind in kinds}
        # More functions spread the gateway's calls over workers (each owns some of them).
        names = ["noop"] + [f"noop{k}" for k in range(1, args.functions)]
        for name in names[1:]:
            async with http.put(f"{url}/v1/functions/{name}", json=body) as resp:
                assert resp.status in (200, 201), await resp.text()
        invoke_urls = itertools.cycle([f"{url}/v1/functions/{n}/invoke" for n in names])
        answered = 1  # the first call above

        async def via_gateway() -> None:
            nonlocal answered
            async with http.post(next(invoke_urls), json={"x": 1}) as resp:
                await resp.read()
                assert resp.status == 200
            answered += 1

        def via(kind: str) -> Callable[[], Awaitable[None]]:
            url = relays[kind][1]

            async def call() -> None:
                async with http.post(url, json={"x": 1}) as resp:
                    await resp.read()
                    assert resp.status == 200

            return call

        async def to_container() -> None:
            payload = {
                "value": {"x": 1},
                "activation_id": "bench",
                "deadline": int((time.time() + 30) * 1000),
            }
            async with direct.post("http://container/run", json=payload) as resp:
                await resp.read()
                assert resp.status == 200

        paths: dict[str, Callable[[], Awaitable[None]]] = {
            "gateway": via_gateway,
            "bare aiohttp relay": via("relay"),
            "lean relay": via("lean"),
            "raw relay": via("raw"),
            **{ALTERNATIVE_NAMES[k]: via(k) for k in kinds if k in ALTERNATIVE_NAMES},
            "direct": to_container,
        }
        pids = {
            "gateway": process_tree(server_pid),
            "bare aiohttp relay": [relays["relay"][0].pid],
            "lean relay": [relays["lean"][0].pid],
            "raw relay": [relays["raw"][0].pid],
            **{ALTERNATIVE_NAMES[k]: [relays[k][0].pid] for k in kinds if k in ALTERNATIVE_NAMES},
            "direct": [],
        }
        try:
            async with direct:
                await report(args, paths, pids, thaw)
            await accounted(http, url, data_dir, names, answered)
        finally:
            for proc, _ in relays.values():
                proc.terminate()
                proc.wait(timeout=10)


async def report(
    args: argparse.Namespace,
    paths: dict[str, Callable[[], Awaitable[None]]],
    pids: dict[str, list[int]],
    thaw: Callable[[], None],
) -> None:
    """Time the paths, interleaved in rounds so machine noise hits them alike.

    The gateway freezes its idle container after each of its calls; the relay and direct
    paths bypass it, so their rounds start by thawing the container (that write is not
    timed: it is the gateway's cost, and counted in its figures). CPU per call is the
    serving processes' own (all of the gateway's, the relay's; none for direct), read
    from /proc around each round.
    """
    for name, call in paths.items():
        if name != "gateway":
            thaw()
        await timed(100, call)  # warm every path
    samples: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, float] = dict.fromkeys(paths, 0.0)
    rounds = 10
    for _ in range(rounds):
        for name, call in paths.items():
            if name != "gateway":
                thaw()
            before = cpu_seconds(pids[name])
            samples[name] += await timed(max(1, args.calls // rounds), call)
            cpu[name] += cpu_seconds(pids[name]) - before
    print(f"warm latency over {args.calls} sequential calls per path (ms)")
    print(f"{'path':<22}{'p50':>9}{'p99':>9}{'mean':>9}{'p50/direct':>12}{'CPU/call':>10}")
    base = percentile(samples["direct"], 50)
    for name, s in samples.items():
        per_call = f"{cpu[name] / len(s) * 1000:>10.3f}" if pids[name] else f"{'-':>10}"
        print(
            f"{name:<22}{percentile(s, 50):>9.3f}{percentile(s, 99):>9.3f}"
            f"{statistics.fmean(s):>9.3f}{percentile(s, 50) / base:>11.2f}x{per_call}"
        )
    gw, dc, floor = samples["gateway"], samples["direct"], samples["bare aiohttp relay"]
    print(
        f"ratio gateway/direct: p50 {percentile(gw, 50) / base:.2f}x, "
        f"p99 {percentile(gw, 99) / percentile(dc, 99):.2f}x; "
        f"gateway/relay floor: p50 {percentile(gw, 50) / percentile(floor, 50):.2f}x"
    )
    if args.concurrency > 1:
        rates, busy = {}, {}
        for name, call in paths.items():
            if name != "gateway":
                thaw()
            before = cpu_seconds(pids[name])
            rates[name] = await throughput(args.seconds, args.concurrency, call)
            busy[name] = (cpu_seconds(pids[name]) - before) / (rates[name] * args.seconds)
        print(
            f"throughput, {args.concurrency} concurrent clients, {args.seconds:g} s each: "
            + ", ".join(f"{name} {rate:.0f}/s" for name, rate in rates.items())
        )
        print(
            f"ratio gateway/direct {rates['gateway'] / rates['direct']:.2f}x, "
            f"relay/direct {rates['bare aiohttp relay'] / rates['direct']:.2f}x; CPU per call "
            f"under load: gateway {busy['gateway'] * 1000:.3f} ms, "
            f"relay {busy['bare aiohttp relay'] * 1000:.3f} ms, "
            f"lean relay {busy['lean relay'] * 1000:.3f} ms, "
            f"raw relay {busy['raw relay'] * 1000:.3f} ms"
        )
        others = [name for name in ALTERNATIVE_NAMES.values() if name in busy]
        if others:
            print(
                "CPU per call under load, servers the API could move to: "
                + ", ".join(f"{name} {busy[name] * 1000:.3f} ms" for name in others)
                + f" (lean relay, aiohttp's server: {busy['lean relay'] * 1000:.3f} ms)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1, help="also measure throughput")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument(
        "--alternatives",
        action="store_true",
        help="also relay through uvicorn (bare ASGI, and Starlette): servers the API could "
        "move to (needs `pip install uvicorn starlette`)",
    )
    parser.add_argument(
        "--functions", type=int, default=1, help="no-op functions the gateway's calls cycle over"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as tmp:
        data_dir = Path(tmp) / "d"
        env = {**os.environ, "NIMBUS_ADMIN_KEY": KEY}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                *warm_serve_args(args.port, data_dir),
                "--workers",
                str(args.workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            wait_healthy(url, server)
            asyncio.run(bench(args, url, data_dir, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
