"""A sequence's steps under `nimbus serve --workers N`: each runs in its function's owner.

The choice (here, or sent to the owner, and what a failed hand-over means) with a fake
relay; the relay itself over a real handover socket to an owner's middleware.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from gateway.keys import PLATFORM, Platform
from gateway.middleware import Handler
from gateway.peers import Sessions, handed_over, handover_socket
from gateway.step_relay import (
    STEP_PATH,
    request_from,
    request_json,
    result_from,
    result_json,
    serve_steps,
    step_relay,
)
from invoker.api import FunctionSpec, InvokeRequest, InvokeResult, Status, Throttled
from invoker.operations import Operations
from invoker.ownership import Ownership, owner_of
from invoker.sequences import SequenceRunner
from invoker.step_routing import Lost, Unreachable, routed_steps, step_runner
from invoker.store.base import StoredFunction

HERE = Ownership(worker=0, workers=2)


def owned(prefix: str, worker: int) -> str:
    """The first `<prefix><n>` that `worker` owns of two."""
    return next(n for i in itertools.count() if owner_of(n := f"{prefix}{i}", 2) == worker)


def spec(name: str, *, sequence: tuple[str, ...] = (), **params: Any) -> FunctionSpec:
    return FunctionSpec(
        tenant="t",
        name=name,
        version=3,
        runtime="python:3.11",
        handler="main.handler",
        code_sha256="0" * 64,
        code_kind="sequence" if sequence else "source",
        params=params,
        secret_params=tuple(params)[:1],
        sequence=sequence,
        env={"A": "1"},
    )


def result(request: InvokeRequest, value: Any, status: Status = Status.SUCCESS) -> InvokeResult:
    return InvokeResult(
        activation_id=request.activation_id,
        status=status,
        result=value,
        error=None,
        logs=["a log"],
        start=1.0,
        end=2.0,
        duration_ms=1000.0,
        init_ms=0.0,
        wait_ms=0.0,
        cold_start=True,
        memory_mb=request.function.memory_mb,
        node="local",
    )


def doubled(request: InvokeRequest) -> InvokeResult:
    """What every fake function does: {"n": n} -> {"n": 2n (+ its param `plus`)}."""
    return result(request, {"n": request.args["n"] * 2 + request.args.get("plus", 0)})


@dataclass
class Calls:
    """Steps run here and steps sent, by worker; what a fake relay does instead."""

    local: list[InvokeRequest] = field(default_factory=list)
    sent: list[tuple[int, InvokeRequest]] = field(default_factory=list)
    fails: Exception | None = None

    async def run_here(self, request: InvokeRequest) -> InvokeResult:
        self.local.append(request)
        return doubled(request)

    async def relay(self, worker: int, request: InvokeRequest) -> InvokeResult:
        self.sent.append((worker, request))
        if self.fails is not None:
            raise self.fails
        return doubled(request)


def step_of(name: str, n: int = 1) -> InvokeRequest:
    return InvokeRequest(activation_id=f"id-{name}", function=spec(name), args={"n": n})


async def test_a_step_runs_here_when_this_worker_owns_its_function_else_in_its_owner() -> None:
    calls = Calls()
    step = routed_steps(calls.run_here, calls.relay, HERE)
    mine, theirs = step_of(owned("a", 0)), step_of(owned("b", 1))
    assert (await step(mine)).result == {"n": 2}
    assert (await step(theirs)).result == {"n": 2}
    assert calls.local == [mine] and calls.sent == [(1, theirs)]


async def test_an_owner_that_cannot_be_reached_leaves_the_step_to_run_here() -> None:
    calls = Calls(fails=Unreachable("no socket"))
    request = step_of(owned("b", 1))
    answer = await routed_steps(calls.run_here, calls.relay, HERE)(request)
    assert answer.status is Status.SUCCESS and calls.local == [request]


async def test_a_step_lost_in_its_owner_fails_as_a_platform_error_and_never_runs_again() -> None:
    calls = Calls(fails=Lost("connection reset"))
    request = step_of(owned("b", 1))
    answer = await routed_steps(calls.run_here, calls.relay, HERE, wall=lambda: 5.0)(request)
    assert (answer.status, answer.activation_id, answer.start) == (
        Status.PLATFORM_ERROR,
        request.activation_id,
        5.0,
    )
    assert calls.local == [] and len(calls.sent) == 1


async def test_the_owners_throttling_comes_back_as_throttled() -> None:
    calls = Calls(fails=Throttled("tenant at its limit", 0.5))
    with pytest.raises(Throttled) as caught:
        await routed_steps(calls.run_here, calls.relay, HERE)(step_of(owned("b", 1)))
    assert caught.value.retry_after_s == 0.5 and calls.local == []


def test_one_process_or_no_relay_runs_steps_through_the_invoker() -> None:
    calls = Calls()
    assert step_runner(calls.run_here, None, HERE) is None
    assert step_runner(calls.run_here, calls.relay, None) is None
    assert step_runner(calls.run_here, calls.relay, HERE) is not None


async def test_a_sequence_sends_each_step_to_its_owner_with_the_id_and_args_it_chose() -> None:
    first, second = owned("first", 1), owned("second", 0)
    functions = {
        first: spec(first, plus=1),
        second: spec(second),
        "seq": spec("seq", sequence=(first, second)),
    }

    async def lookup(tenant: str, name: str) -> StoredFunction | None:
        return StoredFunction(functions[name], 0.0, 0.0, 0)

    async def invoke(request: InvokeRequest, recorder: object = None) -> InvokeResult:
        raise AssertionError("every step of code goes through the step runner")

    calls, recorded, ids = Calls(), [], itertools.count()

    async def record(request: InvokeRequest, answer: InvokeResult) -> None:
        recorded.append(answer)

    runner = SequenceRunner(
        lookup=lookup,
        invoke=invoke,
        record=record,
        new_id=lambda: f"step{next(ids)}",
        step=routed_steps(calls.run_here, calls.relay, HERE),
    )
    call = InvokeRequest(activation_id="seq-id", function=functions["seq"], args={"n": 1})
    answer = await runner.call(call)
    assert (answer.status, answer.result) == (Status.SUCCESS, {"n": 6})  # (1*2+1)*2
    [(worker, sent)] = calls.sent
    assert worker == 1 and sent.function == functions[first]
    assert sent.activation_id == "step0" and sent.args == {"n": 1, "plus": 1}
    assert [r.activation_id for r in calls.local] == ["step1"]
    assert answer.logs == ["step0", "step1"] and [r.activation_id for r in recorded] == ["seq-id"]


def test_a_step_and_its_result_cross_the_wire_unchanged() -> None:
    request = InvokeRequest(
        activation_id="abc",
        function=spec("f", sequence=(), secret=1, other="x"),
        args={"n": [1, {"deep": None}]},
        trigger="cron",
        attempt=2,
    )
    assert request_from(json.loads(json.dumps(request_json(request)))) == request
    answer = result(request, {"ok": True}, Status.TIMEOUT)
    assert result_from(json.loads(json.dumps(result_json(answer)))) == answer


@pytest.mark.parametrize("args", [[["a", 1], ["b", 2]], [1, 2], "text", 7, None])
def test_a_step_whose_input_is_not_an_object_crosses_the_wire_as_it_is(args: Any) -> None:
    # A step's input is the last step's result: a list of pairs must not become an object.
    request = InvokeRequest(activation_id="abc", function=spec("f"), args=args)
    assert request_from(json.loads(json.dumps(request_json(request)))).args == args


# ---- over a real handover socket ----


@dataclass
class FakeOps:
    """The owner's `Operations.run_step`, doing what the test sets."""

    run: Callable[[InvokeRequest], Awaitable[InvokeResult]]
    ran: list[InvokeRequest] = field(default_factory=list)

    async def run_step(self, request: InvokeRequest) -> InvokeResult:
        self.ran.append(request)
        return await self.run(request)


class OwnerPlatform(Platform):
    def __init__(self, ops: FakeOps) -> None:
        super().__init__()
        self._fake = ops

    @property
    def ops(self) -> Operations:
        return cast(Operations, self._fake)


@dataclass
class Owner:
    ops: FakeOps
    sessions: Sessions
    transports: list[asyncio.Transport]
    tcp: str  # the owner's "public port"


@pytest.fixture
async def owner(tmp_path: Path) -> AsyncIterator[Owner]:
    """Worker 1: its handover socket and a TCP port, both serving the one app."""
    ops = FakeOps(run=lambda request: asyncio.sleep(0, doubled(request)))
    transports: list[asyncio.Transport] = []

    @web.middleware
    async def keep(request: web.Request, handler: Handler) -> web.StreamResponse:
        transports.append(cast(asyncio.Transport, request.transport))
        return await handler(request)

    path = handover_socket(tmp_path, 1)
    path.parent.mkdir()
    mine = serve_steps(lambda request: handed_over(request, str(path)))
    app = web.Application(middlewares=[keep, mine])  # type: ignore[list-item]
    app[PLATFORM] = OwnerPlatform(ops)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(path)).start()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    sessions = Sessions(tmp_path)
    yield Owner(ops, sessions, transports, tcp.name)
    await sessions.close()
    await runner.cleanup()


async def test_the_owner_runs_a_sent_step_as_the_sequence_chose_it(owner: Owner) -> None:
    request = step_of(owned("b", 1), n=21)
    answer = await step_relay(owner.sessions.to)(1, request)
    assert owner.ops.ran == [request] and answer == doubled(request)


async def test_a_step_throttled_in_its_owner_is_throttled_in_the_sequence(owner: Owner) -> None:
    async def refuse(request: InvokeRequest) -> InvokeResult:
        raise Throttled("too many calls in flight", 0.25)

    owner.ops.run = refuse
    with pytest.raises(Throttled) as caught:
        await step_relay(owner.sessions.to)(1, step_of("b"))
    assert (caught.value.reason, caught.value.retry_after_s) == ("too many calls in flight", 0.25)


async def test_no_socket_is_unreachable_and_a_dropped_call_is_lost(owner: Owner) -> None:
    with pytest.raises(Unreachable):
        await step_relay(owner.sessions.to)(0, step_of("a"))  # worker 0 is not listening

    async def die(request: InvokeRequest) -> InvokeResult:
        owner.transports[-1].close()  # the owner stops mid-call
        await asyncio.sleep(0.1)
        return doubled(request)

    owner.ops.run = die
    with pytest.raises(Lost):
        await step_relay(owner.sessions.to)(1, step_of("b"))
    assert len(owner.ops.ran) == 1


async def test_steps_are_taken_only_over_the_handover_socket(owner: Owner) -> None:
    async with aiohttp.ClientSession() as public:
        url = f"{owner.tcp.rstrip('/')}{STEP_PATH}"
        async with public.post(url, json=request_json(step_of("b"))) as answer:
            assert answer.status == 404
    assert owner.ops.ran == []
