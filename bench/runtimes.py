"""Node.js against Python: cold start and warm-call overhead of the two runtimes, one run.

Starts containers on the real engine with the Docker driver (as the platform does) and
speaks /init and /run through the invoker's `RuntimeClient`. Both runtimes load an
echo function; the runtimes alternate so that drift on the machine hits both alike.

- cold: driver create (container started, proxy socket accepting) + /init + first /run,
  then the container is removed; `--cold` starts of each runtime.
- warm: one initialised container per runtime, `--warm` sequential /run calls each,
  alternating between the two.

Prints p50/p99 of each phase per runtime and the ratio nodejs/python.

    .venv/bin/python bench/runtimes.py [--cold 10] [--warm 300] [--netns]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import docker
from common import percentile

from invoker.drivers.base import MANAGED_LABEL, ContainerHandle, ContainerSpec
from invoker.drivers.docker import DockerDriver
from invoker.images import build_runtime_images
from invoker.runtime_client import RuntimeClient

PYTHON, NODE = "python:3.11", "nodejs:18"
ECHO = {
    PYTHON: ("def main(args):\n    return {'ok': True, **args}\n", "main.main"),
    NODE: ("exports.main = (params) => ({ ok: true, ...params });\n", "main.main"),
}
PHASES = ("create", "init", "first run", "cold total")


class Bench:
    """One driver and client for both runtimes, and the samples taken."""

    def __init__(self, driver: DockerDriver, client: RuntimeClient, netns: bool) -> None:
        self.driver = driver
        self.client = client
        self.netns = netns
        self.samples: dict[tuple[str, str], list[float]] = {}

    def add(self, runtime: str, phase: str, ms: float) -> None:
        self.samples.setdefault((runtime, phase), []).append(ms)

    async def start(self, runtime: str) -> ContainerHandle:
        """A container with the echo function loaded; records create and init times."""
        spec = ContainerSpec(
            name=f"nimbus-bench-rt-{uuid.uuid4().hex[:10]}",
            runtime=runtime,
            memory_mb=128,
            labels={MANAGED_LABEL: "bench-runtimes"},
            netns_group="bench-runtimes" if self.netns else None,
        )
        t0 = time.perf_counter()
        handle = await self.driver.create(spec)
        self.client.trust(handle.address, handle.token)
        t1 = time.perf_counter()
        code, main = ECHO[runtime]
        resp = await self.client.init(
            handle.address, code=code, binary=False, main=main, env={}, timeout=30
        )
        if not resp.ok:
            raise SystemExit(f"{runtime} /init failed: {resp.status} {resp.body}")
        self.add(runtime, "create", (t1 - t0) * 1000)
        self.add(runtime, "init", (time.perf_counter() - t1) * 1000)
        return handle

    async def call(self, runtime: str, handle: ContainerHandle, phase: str) -> float:
        """One /run; records and returns its latency in ms."""
        payload = {"value": {"n": 1}, "activation_id": uuid.uuid4().hex, "function_name": "echo"}
        t = time.perf_counter()
        resp = await self.client.run(handle.address, payload, 30)
        ms = (time.perf_counter() - t) * 1000
        if resp.body.get("result") != {"ok": True, "n": 1}:
            raise SystemExit(f"{runtime} /run answered {resp.status} {resp.body}")
        self.add(runtime, phase, ms)
        return ms

    async def cold(self, runtime: str) -> None:
        t0 = time.perf_counter()
        handle = await self.start(runtime)
        await self.call(runtime, handle, "first run")
        self.add(runtime, "cold total", (time.perf_counter() - t0) * 1000)
        await self.driver.destroy(handle)
        self.client.forget(handle.address)

    def report(self, phases: tuple[str, ...]) -> None:
        print(
            f"{'phase':<11} {'python p50':>11} {'p99':>8} {'nodejs p50':>11} {'p99':>8}"
            f" {'ratio p50':>10} {'p99':>6}"
        )
        for phase in phases:
            py, js = self.samples[(PYTHON, phase)], self.samples[(NODE, phase)]
            py50, py99 = percentile(py, 50), percentile(py, 99)
            js50, js99 = percentile(js, 50), percentile(js, 99)
            print(
                f"{phase:<11} {py50:>9.2f}ms {py99:>6.2f}ms {js50:>9.2f}ms {js99:>6.2f}ms"
                f" {js50 / py50:>9.2f}x {js99 / py99:>5.2f}x"
            )


async def main(cold: int, warm: int, netns: bool) -> None:
    """Run the cold rounds, then the warm rounds, and print both tables."""
    images = build_runtime_images(docker.from_env(), lambda line: None, only=(PYTHON, NODE))
    run_dir = Path(tempfile.mkdtemp(prefix="nbrt-"))
    driver = DockerDriver(run_dir, images.__getitem__)
    client = RuntimeClient()
    bench = Bench(driver, client, netns)
    try:
        for runtime in (PYTHON, NODE):  # one unmeasured start each: page cache, netns holder
            await bench.cold(runtime)
        bench.samples.clear()
        for _ in range(cold):
            for runtime in (PYTHON, NODE):
                await bench.cold(runtime)
        print(f"\ncold start, {cold} of each (create + /init + first /run, 128 MB):")
        bench.report(PHASES)

        handles = {runtime: await bench.start(runtime) for runtime in (PYTHON, NODE)}
        for _ in range(20):  # warm-up: JIT, connection pool
            for runtime, handle in handles.items():
                await bench.call(runtime, handle, "warm-up")
        for _ in range(warm):
            for runtime, handle in handles.items():
                await bench.call(runtime, handle, "warm run")
        print(f"\nwarm /run, {warm} sequential calls of each (alternating):")
        bench.report(("warm run",))
    finally:
        await client.close()
        await driver.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=10, help="cold starts per runtime")
    parser.add_argument("--warm", type=int, default=300, help="warm calls per runtime")
    parser.add_argument(
        "--netns", action="store_true", help="share one empty network namespace, as tenants do"
    )
    args = parser.parse_args()
    asyncio.run(main(args.cold, args.warm, args.netns))
