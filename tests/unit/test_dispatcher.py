"""The dispatcher gives up on a call whose every attempt was lost with its gateway, and a
tenant's flood of async calls neither holds up another tenant's call nor passes its backlog."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from invoker.api import InvokeResult, Status
from invoker.dispatcher import BacklogFull, Dispatcher, RetryPolicy, pending_activation
from invoker.store.base import FunctionDraft
from invoker.store.sqlite import SqliteStore

T0 = 1_764_000_000.0


class NeverRun:
    """An invoker that must not be asked to run the call."""

    calls = 0

    async def invoke(self, request: Any, recorder: Any = None) -> Any:
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


class Gated:
    """An invoker whose calls of one tenant block until released; records who ran when."""

    def __init__(self, blocked: str) -> None:
        self.blocked = blocked
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def invoke(self, request: Any, recorder: Any = None) -> InvokeResult:
        """Like the invoker: run, then record through the caller's recorder."""
        self.started.append(request.function.tenant)
        if request.function.tenant == self.blocked:
            await self.release.wait()
        result = self.result(request)
        if recorder is not None:
            await recorder.record(request, result)
        return result

    @staticmethod
    def result(request: Any) -> InvokeResult:
        now = time.time()
        return InvokeResult(
            request.activation_id,
            Status.SUCCESS,
            "ok",
            None,
            [],
            now,
            now,
            1.0,
            0.0,
            0.0,
            False,
            128,
        )


def draft_of(tenant: str) -> FunctionDraft:
    code = b"def handler(e):\n    return 1\n"
    return FunctionDraft(
        tenant, "f", "python:3.11", "main.handler", "source", code, 128, 5.0, 1, {}, False
    )


async def test_a_tenants_flood_leaves_a_slot_for_another_tenants_call(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open()
    invoker = Gated(blocked="ann")
    dispatcher = Dispatcher(
        store,
        invoker,
        max_in_flight=4,
        poll_s=0.05,
        backlog_for={"ann": 30}.get,  # type: ignore[arg-type]
    )
    await dispatcher.start()
    try:
        ann, _ = await store.put_function(draft_of("ann"), T0)
        bob, _ = await store.put_function(draft_of("bob"), T0)
        flood = [await dispatcher.submit(ann.spec, {"i": i}) for i in range(30)]
        with pytest.raises(BacklogFull):  # the 31st has no room: nothing is stored
            await dispatcher.submit(ann.spec, {"i": 30})
        for _ in range(100):  # ann fills every slot but the last, and waits there
            if len(invoker.started) == 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert invoker.started == ["ann"] * 3
        mine = await dispatcher.submit(bob.spec, {})  # bob's call takes the kept slot at once
        for _ in range(100):
            got = await store.get_activation("bob", mine)
            if got is not None and got.status is Status.SUCCESS:
                break
            await asyncio.sleep(0.01)
        assert got is not None and got.status is Status.SUCCESS
        assert invoker.started == ["ann"] * 3 + ["bob"]
        invoker.release.set()
        for _ in range(300):
            if await store.queue_depth() == 0:
                break
            await asyncio.sleep(0.02)
        for aid in flood:  # and ann's calls all ran, once each
            done = await store.get_activation("ann", aid)
            assert done is not None and done.status is Status.SUCCESS and done.attempts == 1
        assert invoker.started.count("ann") == 30
    finally:
        await dispatcher.close()
        await store.close()


@pytest.mark.parametrize("max_in_flight", [2, 4])  # every slot taken; all but one taken
async def test_a_dispatcher_that_cannot_claim_a_due_call_waits_instead_of_spinning(
    tmp_path: Path, max_in_flight: int
) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open()
    looks = 0
    next_due, claim = store.next_due, store.claim

    async def counted_next_due(*args: Any, **kwargs: Any) -> Any:
        nonlocal looks
        looks += 1
        return await next_due(*args, **kwargs)

    async def counted_claim(*args: Any, **kwargs: Any) -> Any:
        nonlocal looks
        looks += 1
        return await claim(*args, **kwargs)

    store.next_due = counted_next_due  # type: ignore[method-assign]
    store.claim = counted_claim  # type: ignore[method-assign]
    invoker = Gated(blocked="ann")
    dispatcher = Dispatcher(store, invoker, max_in_flight=max_in_flight, poll_s=0.5)
    await dispatcher.start()
    try:
        ann, _ = await store.put_function(draft_of("ann"), T0)
        for i in range(10):  # more due calls than ann may run at once: they wait, due
            await dispatcher.submit(ann.spec, {"i": i})
        for _ in range(100):
            if len(invoker.started) == max(1, max_in_flight - 1):
                break
            await asyncio.sleep(0.01)
        looks = 0
        await asyncio.sleep(0.5)
        # Waiting for a slot (or for ann's share) is a handful of looks, not a spin
        # through the store (thousands in the same half second).
        assert looks <= 30, looks
    finally:
        invoker.release.set()
        await dispatcher.close()
        await store.close()
