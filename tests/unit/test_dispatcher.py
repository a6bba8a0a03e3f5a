"""The dispatcher gives up on a call whose every attempt was lost with its gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from invoker.api import Status
from invoker.dispatcher import Dispatcher, RetryPolicy, pending_activation
from invoker.store.base import FunctionDraft
from invoker.store.sqlite import SqliteStore

T0 = 1_764_000_000.0


class NeverRun:
    """An invoker that must not be asked to run the call."""

    calls = 0

    async def invoke(self, request: Any) -> Any:
        NeverRun.calls += 1
        raise AssertionError("a call that lost every attempt was run again")


async def test_a_call_that_took_down_every_gateway_is_given_up(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open()
    try:
        stored, _ = await store.put_function(
            FunctionDraft(
                "acme",
                "crash",
                "python:3.11",
                "main.handler",
                "source",
                b"def handler(e):\n    return 1\n",
                128,
                5.0,
                1,
                {},
                False,
            ),
            T0,
        )
        await store.enqueue(pending_activation("q1", stored.spec, None), {}, T0)
        # Three gateways claim it in turn and die with it: each lease lapses.
        for k, owner in enumerate(("gw-a", "gw-b", "gw-c")):
            (call,) = await store.claim(T0 + 2 * k, 1, owner=owner, lease_s=1)
            assert call.attempts == k
        dispatcher = Dispatcher(
            store,
            NeverRun(),  # type: ignore[arg-type]
            policy=RetryPolicy(retries=2),
            wall=lambda: T0 + 6,
            owner="gw-d",
            poll_s=0.05,
        )
        await dispatcher.start()
        try:
            for _ in range(100):
                got = await store.get_activation("acme", "q1")
                if got is not None and got.dead_letter:
                    break
                await asyncio.sleep(0.05)
        finally:
            await dispatcher.close()
        assert got is not None and got.dead_letter and got.status is Status.PLATFORM_ERROR
        assert got.attempts == 3 and "gave up after 3 attempts" in (got.error or "")
        assert NeverRun.calls == 0
        assert await store.queue_depth() == 0  # off the queue: dead-lettered, not lost
    finally:
        await store.close()
