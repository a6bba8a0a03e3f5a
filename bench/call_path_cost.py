"""CPU per warm call of the invoker's own call path (issue 17), in one process.

    .venv/bin/python bench/call_path_cost.py [--calls 4000] [--repeats 7] [--others 0]
        [--long-history] [--baseline DIR [--rounds 3]]

A real `Invoker` (pool, keep-alive memory with the default `budget` policy, idle freezer,
metrics on a registry, API tokens) over an in-memory driver and runtime client that answer
at once, and the runner every entrance takes (`stored_runner(...).call`, which
`Operations.invoke` is). The record path is measured by `bench/record_cost.py`, so calls
are recorded by a recorder that does nothing. Times N warm calls one after another, then
the same N from 16 concurrent callers (16 warm containers of one function), and prints the
minimum over `--repeats` of `time.process_time()` per call, in microseconds. With
`--others N`, N other functions hold a warm container each all along (a busier table);
with `--long-history`, the function's keep-alive history has idle times in every bin (a
busy function after quiet nights), which the default `budget` policy decides from.

With `--baseline DIR` (another tree's root, e.g. the code before a change), rounds of the
two trees alternate in fresh subprocesses, so load on this noisy machine hits both alike,
and both are printed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from invoker.api import ActivationIds, FunctionSpec, InvokeRequest, InvokeResult, Status
from invoker.containers.keepalive import keep_alive_policy_by_name
from invoker.containers.pool import PoolLimits
from invoker.drivers.base import ContainerHandle, ContainerSpec, ContainerStats
from invoker.metrics import InvokerMetrics
from invoker.runtime_client import RunResponse
from invoker.sequences import SequenceRunner, stored_runner
from invoker.service import Invoker, InvokerConfig
from invoker.store.base import FunctionDraft
from invoker.store.sqlite import SqliteStore

CONCURRENCY = 16
_USAGE = ContainerStats(peak_memory_mb=7.25, cpu_seconds=0.0004)
_REPLY = RunResponse(200, {"result": {"ok": True}, "logs": []}, 30)


class _Meter:
    """A container's cgroup: thaw, freeze and measure cost nothing here."""

    def start(self) -> None:
        pass

    def stop(self) -> ContainerStats:
        return _USAGE

    def freeze(self) -> bool:
        return True

    def thaw(self) -> bool:
        return True


class _Driver:
    """Containers that start at once and have a meter each."""

    name = "bench"

    def __init__(self) -> None:
        self._ids = count(1)
        self._meter = _Meter()

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        cid = f"c{next(self._ids)}"
        return ContainerHandle(id=cid, name=spec.name, address=f"bench://{cid}", node=spec.node)

    async def destroy(self, handle: ContainerHandle) -> None:
        pass

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        return _USAGE

    def call_meter(self, handle: ContainerHandle) -> _Meter:
        return self._meter

    async def ended(self, handle: ContainerHandle) -> str | None:
        return None

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        return 0

    async def close(self) -> None:
        pass


class _Runtime:
    """/init and /run that answer at once (a /run yields to the loop once, as I/O does)."""

    def trust(self, address: str, token: str | None) -> None:
        pass

    def forget(self, address: str) -> None:
        pass

    async def init(self, address: str, **kwargs: Any) -> RunResponse:
        return RunResponse(200, {"ok": True})

    async def run(self, address: str, payload: dict[str, Any], timeout: float) -> RunResponse:
        await asyncio.sleep(0)
        return _REPLY

    async def close(self) -> None:
        pass


class _NoRecord:
    """The record path is bench/record_cost.py's: nothing is written here."""

    async def record(self, request: InvokeRequest, result: InvokeResult) -> None:
        pass


def _token(spec: FunctionSpec, now: float) -> str:
    return "token"  # the gateway's minter reuses a token for a minute: a dict hit


async def _sequential(runner: SequenceRunner, spec: FunctionSpec, n: int) -> None:
    recorder = _NoRecord()
    for i in range(n):
        await runner.call(InvokeRequest(f"{i:032x}", spec, {"n": i}), recorder)


async def _concurrent(runner: SequenceRunner, spec: FunctionSpec, n: int) -> None:
    recorder = _NoRecord()

    async def caller(c: int) -> None:
        for i in range(n // CONCURRENCY):
            await runner.call(InvokeRequest(f"{c:04x}{i:028x}", spec, {"n": i}), recorder)

    await asyncio.gather(*(caller(c) for c in range(CONCURRENCY)))


async def _cpu_us(work: Any, runner: SequenceRunner, spec: FunctionSpec, n: int) -> float:
    began = time.process_time()
    await work(runner, spec, n)
    return (time.process_time() - began) / n * 1e6


async def _deploy(store: SqliteStore, name: str) -> FunctionSpec:
    code = b"def handler(event):\n    return {'ok': True}\n"
    draft = FunctionDraft(
        "bench", name, "python:3.11", "main.handler", "source", code, 128, 5.0, 1, {}, False
    )
    return (await store.put_function(draft, time.time()))[0].spec


@dataclass(frozen=True)
class Workload:
    """What one measurement runs."""

    calls: int = 4000
    repeats: int = 7
    others: int = 0  # other functions holding a warm container each
    long_history: bool = False  # the function's keep-alive history reaches every bin

    def argv(self) -> list[str]:
        """The command-line flags that give this workload."""
        flags = ["--calls", str(self.calls), "--repeats", str(self.repeats)]
        flags += ["--others", str(self.others)]
        return flags + (["--long-history"] if self.long_history else [])


def _long_history(calls: int) -> dict[str, Any]:
    """A function called back to back for a while, after idle times of every length
    (quiet nights): what the budget policy decides from after every call."""
    bins = {str(b): 3 for b in range(1, 240)} | {"0": calls}
    return {
        "bin_s": 60.0, "n_bins": 240, "bins": bins, "out_of_bounds": [7 * 3600.0],
        "oob_total": 20, "recent": [2.0] * 8, "calls": calls + 800, "colds": 300,
    }  # fmt: skip


async def measure(work: Workload) -> dict[str, float]:
    """Minimum CPU microseconds per call over `work.repeats`: sequential and 16 callers."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "nimbus.db")
        await store.open()
        limits = PoolLimits(memory_mb=128 * (CONCURRENCY + work.others + 1))
        config = InvokerConfig(owner="bench", limits=limits, stem_cells=(), host_cpus=2.0)
        invoker = Invoker(
            _Driver(),  # type: ignore[arg-type]  # structurally a ContainerDriver
            _Runtime(),  # type: ignore[arg-type]  # the RuntimeClient methods the invoker calls
            store,
            config,
            metrics=InvokerMetrics(CollectorRegistry()),
            keep_alive=keep_alive_policy_by_name("budget"),
            token_for=_token,
        )
        spec = await _deploy(store, "noop")
        runner = stored_runner(store, invoker.invoke, ActivationIds().next)
        try:
            for i in range(work.others):
                await _sequential(runner, await _deploy(store, f"other{i}"), 1)
            await _concurrent(runner, spec, CONCURRENCY * 20)  # 16 warm containers
            if work.long_history:
                invoker.keep_alive.restore_state((spec.tenant, spec.name), _long_history(5000))
            await _sequential(runner, spec, 500)  # and warm code paths
            n = work.calls
            seq = [await _cpu_us(_sequential, runner, spec, n) for _ in range(work.repeats)]
            con = [await _cpu_us(_concurrent, runner, spec, n) for _ in range(work.repeats)]
            containers = len(invoker.containers()) - work.others
            last = await runner.call(InvokeRequest("last", spec, {}), _NoRecord())
        finally:
            await invoker.close()
            await store.close()
    assert containers == CONCURRENCY, f"expected {CONCURRENCY} warm containers, {containers}"
    assert last.status is Status.SUCCESS and not last.cold_start, last
    return {"sequential": min(seq), "concurrent": min(con)}


def _run_loop(work: Workload) -> dict[str, float]:
    try:
        import uvloop  # as `nimbus serve` runs

        return uvloop.run(measure(work))
    except ImportError:
        return asyncio.run(measure(work))


def _in_tree(root: str, work: Workload) -> dict[str, float]:
    """One measurement with `root`'s code first on the path, in a fresh process."""
    env = dict(os.environ, PYTHONPATH=root)
    argv = [sys.executable, __file__, *work.argv(), "--json"]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True, cwd=root)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def _title(work: Workload) -> str:
    extras = [f"{work.others} other warm functions"] if work.others else []
    extras += ["a keep-alive history in every bin"] if work.long_history else []
    return f"{work.repeats} repeats of {work.calls} calls" + "".join(f", {e}" for e in extras)


def compare(baseline: str, work: Workload, rounds: int) -> None:
    """Alternate rounds of the baseline tree and this one; print the minimum of each."""
    here = str(Path(__file__).resolve().parent.parent)
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this tree": []}
    for _ in range(rounds):
        runs["baseline"].append(_in_tree(baseline, work))
        runs["this tree"].append(_in_tree(here, work))
    print(f"CPU us per warm call, min of {rounds} rounds x {_title(work)}")
    for name, figures in runs.items():
        seq = min(f["sequential"] for f in figures)
        con = min(f["concurrent"] for f in figures)
        print(f"  {name:10s} sequential {seq:6.1f}   {CONCURRENCY} callers {con:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--others", type=int, default=0, help="other warm functions")
    parser.add_argument(
        "--long-history", action="store_true", help="a keep-alive history in every bin"
    )
    parser.add_argument("--baseline", help="another tree's root to compare with, same run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (baseline)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    work = Workload(args.calls, args.repeats, args.others, args.long_history)
    if args.baseline:
        compare(args.baseline, work, args.rounds)
        return
    figures = _run_loop(work)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"CPU us per warm call, min of {_title(work)}")
    print(f"  sequential {figures['sequential']:6.1f}")
    print(f"  {CONCURRENCY} callers {figures['concurrent']:6.1f}")


if __name__ == "__main__":
    main()
