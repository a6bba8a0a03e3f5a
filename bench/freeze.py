"""What freezing idle containers costs a warm call: the same container, frozen or not.

Starts one runtime container on the real engine (the Docker driver, as the platform does),
loads a no-op function, then times warm /run calls in alternating rounds: plain, and
wrapped as the invoker wraps them (thaw before, freeze after). Prints p50/p99 latency and
this process's CPU per call (user + system, which includes the kernel's freezer work) of
both, and their ratios; the plain round is the baseline of the same run.

    .venv/bin/python bench/freeze.py [--calls 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import docker
from common import percentile

from invoker.containers.cgroups import CallMeter
from invoker.drivers.base import ContainerSpec
from invoker.drivers.docker import DockerDriver
from invoker.images import build_runtime_images
from invoker.runtime_client import RuntimeClient

NOOP = "def handler(event):\n    return event\n"


async def round_of(
    client: RuntimeClient, address: str, calls: int, meter: CallMeter, freeze: bool
) -> tuple[list[float], float]:
    """Latencies (ms) of `calls` sequential warm calls and CPU seconds per call."""
    payload = {"value": {"x": 1}, "activation_id": "bench"}
    out = []
    meter.thaw()  # a plain round after a frozen one starts from a frozen container
    cpu0 = time.process_time()
    for _ in range(calls):
        t = time.perf_counter()
        if freeze:
            meter.thaw()
        await client.run(address, payload, 10.0)
        if freeze:
            meter.freeze()
        out.append((time.perf_counter() - t) * 1000)
    return out, (time.process_time() - cpu0) / calls


async def main(calls: int, rounds: int) -> None:
    """Run the alternating rounds and print the figures."""
    images = build_runtime_images(docker.from_env(), lambda line: None)
    run_dir = Path(tempfile.mkdtemp(prefix="nbfz-"))
    driver = DockerDriver(run_dir, lambda runtime: images[runtime])
    client = RuntimeClient()
    spec = ContainerSpec(
        name=f"nimbus-bench-freeze-{run_dir.name}",
        runtime="python:3.11",
        memory_mb=128,
        labels={"io.nimbus.managed": "bench-freeze"},
    )
    handle = await driver.create(spec)
    try:
        client.trust(handle.address, handle.token)
        await client.init(
            handle.address, code=NOOP, binary=False, main="main.handler", env={}, timeout=30
        )
        meter = driver.call_meter(handle)
        if meter is None or meter.freezer is None:
            raise SystemExit("no cgroup freezer for the container on this machine")
        await round_of(client, handle.address, 200, meter, True)  # warm up both paths
        plain: list[float] = []
        frozen: list[float] = []
        cpu_plain: list[float] = []
        cpu_frozen: list[float] = []
        for _ in range(rounds):
            lat, cpu = await round_of(client, handle.address, calls // rounds, meter, False)
            plain += lat
            cpu_plain.append(cpu)
            lat, cpu = await round_of(client, handle.address, calls // rounds, meter, True)
            frozen += lat
            cpu_frozen.append(cpu)
        meter.thaw()
    finally:
        await client.close()
        await driver.destroy(handle)
        await driver.close()
    cp, cf = statistics.median(cpu_plain) * 1000, statistics.median(cpu_frozen) * 1000
    print(f"warm /run, {calls} calls each, {rounds} alternating rounds, one container")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/call':>14}")
    for name, lat, cpu in (("plain (baseline)", plain, cp), ("thaw + run + freeze", frozen, cf)):
        print(f"{name:24}{percentile(lat, 50):10.3f}{percentile(lat, 99):10.3f}{cpu:14.3f}")
    print(
        f"ratio: p50 {percentile(frozen, 50) / percentile(plain, 50):.2f}x, "
        f"CPU {cf / cp:.2f}x; freezing adds {percentile(frozen, 50) - percentile(plain, 50):.3f} "
        f"ms p50 and {cf - cp:.3f} ms CPU per call"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
