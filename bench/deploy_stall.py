"""Warm-call latency while a large deploy goes through the same gateway.

Starts `nimbus serve` (real Docker) in a subprocess, deploys and warms a no-op function,
then, in alternating rounds, times sequential warm calls through the gateway's HTTP API
alone, and while a ~50 MiB deploy (a zip of random, incompressible bytes, base64 in the
JSON body, inside the 72 MiB body limit and the 48 MiB code limit) is sent concurrently.
Every round deploys new bytes (a new code blob, as a real update). Prints p50/p99/max of
both and the ratios: what the deploy's CPU work on the gateway's event loop costs calls.

With --first-call, each deploy round also invokes the big function once after its deploy
(a cold start whose /init carries the whole zip), inside the same timed window.

The deploy is sent from a thread with a body encoded beforehand (sending releases the GIL),
so the bench's own event loop, which times the warm calls, does no work for it.

    .venv/bin/python bench/deploy_stall.py [--rounds 6] [--body-mib 50] [--first-call]
    # another tree, e.g. an older commit exported to /tmp/nimbus-before:
    .venv/bin/python bench/deploy_stall.py --root /tmp/nimbus-before
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import aiohttp
from common import free_port, percentile, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
KEY = "nmb_admin_bench_key"
NOOP = "def handler(event):\n    return event\n"
BIG_MAIN = b"def handler(event):\n    return 'big'\n"


def big_body(body_mib: float, round_no: int) -> bytes:
    """A deploy body of about `body_mib` MiB: a stored zip of random bytes, base64 in JSON."""
    blob = os.urandom(int(body_mib * 2**20 * 3 / 4) - 4096)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("main.py", BIG_MAIN + f"# round {round_no}\n".encode())
        archive.writestr("blob.bin", blob)
    body = {
        "handler": "main.handler",
        "code": {"zip": base64.b64encode(buf.getvalue()).decode()},
        "memory_mb": 512,
    }
    return json.dumps(body).encode()


class Deploy(threading.Thread):
    """Sends one deploy (and, if asked, the first call) with blocking I/O, off the loop."""

    def __init__(self, port: int, body: bytes, first_call: bool) -> None:
        super().__init__(daemon=True)
        self._port, self._body, self._first_call = port, body, first_call
        self.statuses: list[int] = []
        self.seconds = 0.0

    def _send(self, method: str, path: str, body: bytes) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=300)
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            self.statuses.append(resp.status)
        finally:
            conn.close()

    def run(self) -> None:
        t = time.perf_counter()
        self._send("PUT", "/v1/functions/big", self._body)
        if self._first_call:
            self._send("POST", "/v1/functions/big/invoke", b"{}")
        self.seconds = time.perf_counter() - t


async def calls_while(
    http: aiohttp.ClientSession, url: str, busy: Deploy | None, seconds: float = 0.0
) -> list[float]:
    """Sequential warm-call latencies (ms): while `busy` runs, or for `seconds` when None."""
    out: list[float] = []
    if busy is not None:
        busy.start()
    stop = time.perf_counter() + seconds

    def going() -> bool:
        return busy.is_alive() if busy is not None else time.perf_counter() < stop

    while going():
        t = time.perf_counter()
        async with http.post(url, json={"x": 1}) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append((time.perf_counter() - t) * 1000)
    if busy is not None:
        busy.join()
    return out


async def bench(args: argparse.Namespace, url: str, port: int) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        body = {"handler": "main.handler", "code": {"source": NOOP}}
        async with http.put(f"{url}/v1/functions/noop", json=body) as resp:
            assert resp.status in (200, 201), await resp.text()
        invoke = f"{url}/v1/functions/noop/invoke"
        await calls_while(http, invoke, None, 1.0)  # warm: container, connections, caches
        rows: dict[str, list[float]] = {"alone": [], "during": [], "after": []}
        deploy_s: list[float] = []
        size = 0
        for round_no in range(args.rounds):
            payload = big_body(args.body_mib, round_no)  # untimed: before the window
            size = len(payload)
            await asyncio.sleep(args.settle)  # what the last round left behind is done
            rows["alone"] += await calls_while(http, invoke, None, args.window)
            deploy = Deploy(port, payload, args.first_call)
            rows["during"] += await calls_while(http, invoke, deploy)
            assert all(s in (200, 201) for s in deploy.statuses), deploy.statuses
            # Work the gateway does after it answered (freeing, writing back) shows here.
            rows["after"] += await calls_while(http, invoke, None, args.window)
            deploy_s.append(deploy.seconds)
            del payload
        report(args, rows, deploy_s, size)


def report(
    args: argparse.Namespace, rows: dict[str, list[float]], deploy_s: list[float], size: int
) -> None:
    what = "deploy + first call" if args.first_call else "deploy"
    print(
        f"{args.rounds} rounds, a {size / 2**20:.1f} MiB {what} per round "
        f"(median {statistics.median(deploy_s):.2f} s)"
    )
    print(f"{'warm calls (ms)':<30}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
    quiet, during = rows["alone"], rows["during"]
    names = {
        "alone": "alone",
        "during": f"during the {what}",
        "after": f"{args.window:g} s after it",
    }
    for key, s in rows.items():
        name = names[key]
        print(
            f"{name:<30}{len(s):>6}{percentile(s, 50):>9.2f}{percentile(s, 99):>9.2f}{max(s):>9.2f}"
        )
    print(
        f"ratio during/alone: p50 {percentile(during, 50) / percentile(quiet, 50):.2f}x, "
        f"p99 {percentile(during, 99) / percentile(quiet, 99):.2f}x, "
        f"max {max(during) / max(quiet):.2f}x"
    )


def tree_env(root: Path) -> dict[str, str]:
    """The environment that runs the code of the tree at `root` (not the installed one)."""
    env = {**os.environ, "NIMBUS_ADMIN_KEY": KEY, "PYTHONPATH": str(root)}
    probe = [sys.executable, "-c", "import gateway, invoker; print(invoker.__file__)"]
    found = subprocess.run(probe, cwd=root, env=env, capture_output=True, text=True, check=True)
    if not found.stdout.strip().startswith(str(root)):
        raise SystemExit(f"{root} would not be the code served: {found.stdout.strip()}")
    return env


def serve(root: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`nimbus serve` from the tree at `root` (its own code first on the path)."""
    env = {**tree_env(root), "NIMBUS_WORKERS": "1"}  # one process, whatever the machine
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--driver", "docker", "--stem-cells", "0"]
    return subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--body-mib", type=float, default=50.0, help="deploy body size")
    parser.add_argument("--first-call", action="store_true", help="also invoke it once")
    parser.add_argument("--window", type=float, default=1.5, help="s of calls alone/after")
    parser.add_argument("--settle", type=float, default=1.0, help="s of quiet between rounds")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree to serve")
    args = parser.parse_args()
    root = args.root.resolve()
    port = args.port or free_port()
    print(f"serving {root}")
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as tmp:
        server = serve(root, Path(tmp) / "d", port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, server)
            asyncio.run(bench(args, url, port))
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
