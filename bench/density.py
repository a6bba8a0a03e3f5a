"""Density: how many idle warm containers this machine holds, and what each one costs.

Runs Nimbus in this process on the real Docker engine with a long keep-alive and no stem
cells, then grows the number of idle warm containers in steps: each step deploys more
distinct functions and calls each new one once (so each leaves one idle container).
At every step it reports the containers held, errors, memory per idle container (from
each container's cgroup v1 files, the containerd shim's PSS, and the host's
MemAvailable), the gateway process's file descriptors and threads, the Docker daemon's
memory, the p50 cold start of that step's calls, and the warm latency of one function,
against the same function measured with 1 container at the start (the baseline).

The pool's memory limit is raised to 70000 MB: it counts each container's *limit*
(128 MB), 500 x 128 MB = 64000 MB, while the actual use is what this prints.

    .venv/bin/python bench/density.py [--steps 50,100,200,300,500] [--parallel 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import docker
from common import percentile
from host_costs import (
    cgroup_memory,
    cpu_seconds,
    daemon_rss,
    host_summary,
    meminfo,
    own_fds_threads,
    process_table,
    shim_pids,
    shim_pss,
)
from in_process import MEMORY_MB, Gateway, nimbus, source

from invoker.drivers.base import MANAGED_LABEL
from invoker.images import build_runtime_images

MIB = 2**20


async def invoke(gw: Gateway, name: str) -> tuple[int, float, bool]:
    """(HTTP status, latency ms, cold start?) of one call; status 0 if it did not answer."""
    t = time.perf_counter()
    try:
        async with gw.http.post(f"{gw.url}/v1/functions/{name}/invoke", json={}) as r:
            await r.read()
            cold = r.headers.get("X-Nimbus-Cold-Start") == "true"
            return r.status, (time.perf_counter() - t) * 1000, cold
    except (aiohttp.ClientError, TimeoutError):
        return 0, (time.perf_counter() - t) * 1000, False


# ---- the run ----


@dataclass
class Step:
    target: int
    held: int
    errors: int
    add_s: float
    cold_p50: float
    usage: float
    rss: float
    working: float
    shim: float
    host: float
    fds: int
    fds_all: int
    idle_cpu: float
    shim_cpu: float
    all_p50: float
    threads: int
    daemon_mb: float
    warm_p50: float
    warm_p99: float
    load: float


async def warm_latency(gw: Gateway, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        status, ms, _ = await invoke(gw, "f0")
        assert status == 200, status
        out.append(ms)
    return out


async def call_each(gw: Gateway, count: int) -> tuple[int, list[float]]:
    """Call f0..f{count-1} once each, in turn (every container serves one warm call)."""
    errors, out = 0, []
    for i in range(count):
        status, ms, cold = await invoke(gw, f"f{i}")
        if status != 200 or cold:
            errors += 1
        out.append(ms)
    return errors, out


async def delete(gw: Gateway, start: int, stop: int, parallel: int) -> None:
    """DELETE f[start..stop): the platform removes their containers."""
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with gate, gw.http.delete(f"{gw.url}/v1/functions/f{i}") as resp:
            assert resp.status in (200, 204), resp.status

    await asyncio.gather(*(one(i) for i in range(start, stop)))


async def grow(gw: Gateway, start: int, stop: int, parallel: int) -> tuple[int, list[float], str]:
    """Deploy f[start..stop) and call each once; (errors, cold latencies, first error)."""
    gate = asyncio.Semaphore(parallel)
    errors = 0
    first_error = ""
    cold: list[float] = []

    async def one(i: int) -> None:
        nonlocal errors, first_error
        async with gate:
            name = f"f{i}"
            await gw.deploy(name, source(name))
            status, ms, was_cold = await invoke(gw, name)
            if status != 200 or not was_cold:
                errors += 1
                if not first_error:
                    first_error = f"f{i}: HTTP {status} after {ms:.0f} ms (0: no answer)"
            else:
                cold.append(ms)

    await asyncio.gather(*(one(i) for i in range(start, stop)))
    return errors, cold, first_error


async def bench(args: argparse.Namespace, data_dir: Path) -> None:
    client = docker.from_env(timeout=300)
    await asyncio.to_thread(build_runtime_images, client, lambda line: None)
    print(host_summary(args.pool_memory_mb, MEMORY_MB))
    steps: list[Step] = []
    stopped = ""
    host_before = meminfo("MemTotal") - meminfo("MemAvailable")
    began = time.monotonic()
    async with nimbus(
        data_dir,
        args.call_timeout,
        stem_cells=(),
        keep_alive_s=3600.0,
        pool_memory_mb=args.pool_memory_mb,
        max_in_flight_per_tenant=max(100, args.parallel * 2),
    ) as gw:
        await gw.deploy("f0", source("f0"))
        assert (await invoke(gw, "f0"))[0] == 200
        await warm_latency(gw, 20)
        baseline = await warm_latency(gw, args.warm_calls)
        have = 1
        for target in args.steps:
            if time.monotonic() - began > args.budget_s:
                stopped = f"time budget of {args.budget_s:g} s used up before step {target}"
                break
            t = time.monotonic()
            errors, cold, first_error = await grow(gw, have, target, args.parallel)
            add_s = time.monotonic() - t
            have = target
            await asyncio.sleep(2)  # let the last starts settle before measuring memory
            found = await asyncio.to_thread(
                client.containers.list, filters={"label": f"{MANAGED_LABEL}={gw.owner}"}
            )
            runtime_ids = {
                c.id for c in found if c.id and c.labels.get("io.nimbus.role") != "netns"
            }
            mems = [m for m in map(cgroup_memory, runtime_ids) if m is not None]
            table = process_table()
            shims, shim_total = shim_pss(runtime_ids, table)
            host_now = meminfo("MemTotal") - meminfo("MemAvailable")
            fds, threads = own_fds_threads()
            warm = await warm_latency(gw, args.warm_calls)
            # CPU the idle containers and their shims burn while nothing calls them.
            pids = shim_pids(runtime_ids, table)
            (c0, s0), t0 = cpu_seconds(runtime_ids, pids), time.monotonic()
            await asyncio.sleep(args.quiet_s)
            (c1, s1), t1 = cpu_seconds(runtime_ids, pids), time.monotonic()
            # One warm call to every container: each leaves a keep-alive unix connection
            # in the gateway's runtime client for 60 s, so this is the fd peak.
            each: list[float] = []
            if not errors:  # calls to containers that failed to start could hang again
                touch_errors, each = await call_each(gw, have)
                errors += touch_errors
            fds_all = own_fds_threads()[0]
            n = max(1, len(mems))
            steps.append(
                Step(
                    target=target,
                    held=len(runtime_ids),
                    errors=errors,
                    add_s=add_s,
                    cold_p50=percentile(cold, 50) if cold else float("nan"),
                    usage=sum(m["usage"] for m in mems) / n / MIB,
                    rss=sum(m["rss"] for m in mems) / n / MIB,
                    working=sum(m["working"] for m in mems) / n / MIB,
                    shim=shim_total / max(1, shims) / MIB,
                    host=(host_now - host_before) / max(1, len(runtime_ids)) / MIB,
                    fds=fds,
                    fds_all=fds_all,
                    idle_cpu=(c1 - c0) / (t1 - t0),
                    shim_cpu=(s1 - s0) / (t1 - t0),
                    all_p50=percentile(each, 50) if each else float("nan"),
                    threads=threads,
                    daemon_mb=daemon_rss(table) / MIB,
                    warm_p50=percentile(warm, 50),
                    warm_p99=percentile(warm, 99),
                    load=os.getloadavg()[0],
                )
            )
            s = steps[-1]
            print(f"  step {target}: {s.held} held, {errors} errors, {add_s:.0f} s, "
                  f"idle states {gw.invoker.container_states()['idle']}")  # fmt: skip
            if errors:
                stopped = f"{errors} errors at step {target}; first: {first_error}"
                break
        t = time.monotonic()
        await delete(gw, 1, have, 16)
        delete_s = time.monotonic() - t
        after = await warm_latency(gw, args.warm_calls)
        after_held = gw.invoker.container_states()
        closing = time.monotonic()
    teardown_s = time.monotonic() - closing
    left = await asyncio.to_thread(
        client.containers.list, all=True, filters={"label": f"{MANAGED_LABEL}={gw.owner}"}
    )
    for c in left:  # ours (this run's owner label); should be none
        print(f"left behind: {c.name} ({c.status})")
        await asyncio.to_thread(c.remove, force=True)
    client.close()

    print(f"\nidle warm containers, {MEMORY_MB} MB functions; memory columns are MiB per container")
    head = (
        f"{'target':>6}{'held':>6}{'err':>5}{'add s':>7}{'cold50':>8}{'usage':>7}{'rss':>6}"
        f"{'wset':>6}{'shim':>6}{'host':>6}{'daemon':>8}{'fds':>6}{'fdsall':>7}{'thr':>5}"
        f"{'warm50':>8}{'warm99':>8}{'all50':>7}{'cpu':>6}{'shimcpu':>8}{'load':>6}"
    )
    print(head)
    for s in steps:
        print(
            f"{s.target:>6}{s.held:>6}{s.errors:>5}{s.add_s:>7.0f}{s.cold_p50:>8.0f}"
            f"{s.usage:>7.1f}{s.rss:>6.1f}{s.working:>6.1f}{s.shim:>6.1f}{s.host:>6.1f}"
            f"{s.daemon_mb:>8.0f}{s.fds:>6}{s.fds_all:>7}{s.threads:>5}"
            f"{s.warm_p50:>8.2f}{s.warm_p99:>8.2f}{s.all_p50:>7.2f}{s.idle_cpu:>6.1%}{s.shim_cpu:>8.1%}"
            f"{s.load:>6.1f}"
        )
    print(
        "held: runtime containers of this platform (docker ps, label); err: failed or cold "
        "calls; add s: time to deploy+start the step's new functions; cold50: p50 ms of "
        "those first calls (--parallel at once)\n"
        "usage/rss/wset: MiB per container from its cgroup (usage, anonymous rss, usage "
        "minus inactive file cache = docker stats); shim: containerd-shim PSS, MiB; host: "
        "rise of MemTotal-MemAvailable since start, MiB per container (shim, kernel, daemon "
        "growth included; other work on the host moves it); daemon: dockerd + containerd "
        "RSS, MiB\n"
        "fds/thr: this process's (the gateway's) open files and threads; fdsall: open files "
        "right after one warm call to every container; warm50/99: ms of f0's warm calls; "
        "all50: p50 ms of that one warm call to every container; cpu/shimcpu: CPU used by "
        "all the idle containers / by their shims over a quiet window (share of one core)"
    )
    base50 = percentile(baseline, 50)
    after50 = percentile(after, 50)
    print(
        f"f0 warm latency with 1 container: before the steps p50 {base50:.2f} ms "
        f"(p99 {percentile(baseline, 99):.2f}), after deleting the others p50 {after50:.2f} ms "
        f"(p99 {percentile(after, 99):.2f}); states after deleting: {after_held}"
    )
    print(f"deleting {have - 1} functions (their containers removed by the platform): "
          f"{delete_s:.0f} s")  # fmt: skip
    if steps:
        last = steps[-1]
        one = (base50 + after50) / 2
        print(f"warm p50 at {last.held} containers / with 1 (mean of before and after): "
              f"{last.warm_p50 / one:.2f}x")  # fmt: skip
        ok = max((s.held for s in steps if s.errors == 0), default=0)
        verdict = "met" if ok >= 500 else "MISSED"
        print(f"most idle containers held without errors: {ok} "
              f"(target 500 without errors: {verdict})")  # fmt: skip
    if stopped:
        print(f"stopped: {stopped}")
    print(f"teardown (the platform removes its own on close): {teardown_s:.0f} s, "
          f"{len(left)} containers left behind")  # fmt: skip
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--steps", type=lambda s: [int(x) for x in s.split(",")], default=[50, 100, 200, 300, 500]
    )
    parser.add_argument("--parallel", type=int, default=8, help="cold starts at once")
    parser.add_argument("--warm-calls", type=int, default=200)
    parser.add_argument("--pool-memory-mb", type=int, default=70000)
    parser.add_argument("--quiet-s", type=float, default=3.0, help="idle CPU window")
    parser.add_argument("--call-timeout", type=float, default=60.0, help="seconds per call")
    parser.add_argument("--budget-s", type=float, default=240.0, help="stop growing after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nb-", dir="/tmp") as tmp:
        asyncio.run(bench(args, Path(tmp) / "d"))


if __name__ == "__main__":
    main()
