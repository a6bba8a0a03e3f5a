"""CPU per call of a synchronous call's record, as the gateway writes it (issue 17).

    .venv/bin/python bench/record_cost.py [--calls 1000] [--repeats 15] [--batch 10]

One process, a real `SqliteStore` in a temporary directory. Each call is what
`StoreRecorder.record` does for a warm call of a no-op: `record_of` (activation and usage
record, metering included) and `save_activation(wait=False)`, then, every `--batch`
calls, what the write-behind timer does when it fires (`_submit_behind`: the batch is
committed on the loop's own connection). Prints the minimum over `--repeats` of
`time.process_time()` per call, in microseconds, the number a noisy machine disturbs
least. Nothing here sleeps or hops threads (waiting for the timer, or `commit_queued`'s
hop to the store's thread, costs an idle loop ~10 us per call more here, and makes the
figure move by as much run to run; a loaded gateway's loop pays neither per batch).

To compare with other code, run it with that code's tree first on the path, e.g.
`PYTHONPATH=/tmp/before .venv/bin/python bench/record_cost.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from invoker.api import ActivationIds, FunctionSpec, InvokeRequest, InvokeResult, Status
from invoker.recorder import StoreRecorder
from invoker.store.sqlite import SqliteStore

_SPEC = FunctionSpec(
    tenant="bench",
    name="noop",
    version=3,
    runtime="python3.11",
    handler="main.handler",
    code_sha256="0" * 64,
    code_kind="source",
    memory_mb=128,
)


def call(n: int, activation_id: str) -> tuple[InvokeRequest, InvokeResult]:
    """The request and result of one warm call that answered a small dict."""
    request = InvokeRequest(activation_id=activation_id, function=_SPEC, args={"n": n})
    start = 1_700_000_000.0 + n * 0.001
    result = InvokeResult(
        activation_id=activation_id,
        status=Status.SUCCESS,
        result={"ok": True, "n": n, "echo": "hello"},
        error=None,
        logs=[],
        start=start,
        end=start + 0.000843,
        duration_ms=0.512,
        init_ms=0.0,
        wait_ms=0.021,
        cold_start=False,
        memory_mb=128,
        node="local",
        peak_memory_mb=7.25,
        cpu_seconds=0.000412,
    )
    return request, result


async def one_round(
    store: SqliteStore,
    recorder: StoreRecorder,
    calls: list[tuple[InvokeRequest, InvokeResult]],
    batch: int,
) -> float:
    """CPU seconds of recording `calls`, committing every `batch` of them."""
    began = time.process_time()
    for i, (request, result) in enumerate(calls, 1):
        await recorder.record(request, result)
        if i % batch == 0:
            store._submit_behind()  # what the write-behind timer calls
    await store.commit_queued()
    return time.process_time() - began


async def main(calls: int, repeats: int, batch: int) -> None:
    """Time `repeats` rounds of `calls` records; print each round's and the minimum's CPU
    per call."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "nimbus.db")
        await store.open()
        try:
            recorder = StoreRecorder(store, step_ms=1)
            ids = ActivationIds()  # random, as the gateway's: inserts land all over the index
            warm_up = [call(-1 - i, ids.next()) for i in range(200)]
            await one_round(store, recorder, warm_up, batch)
            per_call = []
            for r in range(repeats):
                work = [call(r * calls + i, ids.next()) for i in range(calls)]
                per_call.append(await one_round(store, recorder, work, batch) / calls * 1e6)
            rows = await store.list_activations("bench", None, 1)
            assert rows and rows[0].result is not None, "the records were not written"
        finally:
            await store.close()
    print("per call, us:", " ".join(f"{x:.1f}" for x in per_call))
    print(f"record path: {min(per_call):.1f} us CPU per call (min of {repeats})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.repeats, args.batch))
