"""Default parameters and sequences: what a call's function adds before any code runs.

A function's `params` go under every call's event (the event's keys win). A sequence is
a function made of other functions of the same tenant: each step's result is the next
step's input (with that step's own params under it), the first failure stops it, and
each step is an activation of its own, metered and billed as a call. The sequence's own
activation carries no usage: it lists its steps' activation ids in its logs (as
OpenWhisk does) and lasts as long as they took together.

`SequenceRunner.call` is the one way a call runs, whatever its entrance:
`Operations.invoke` (synchronous, web and OpenWhisk calls) and the dispatcher (async and
trigger-fired calls) both call it, from a runner `stored_runner` builds. The runner itself
is orchestration only: looking functions up, running one step of code and recording a
nested sequence's activation are handed in. A step of code runs through `step` when one is
handed in: with `--workers N`, in the worker owning the step's function
(`invoker/step_routing.py`), so its containers live only there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from invoker.api import Activation, InvokeRequest, InvokeResult, Status, Throttled
from invoker.recorder import Recorder
from invoker.records import activation_from
from invoker.step_routing import Step
from invoker.store.base import Store, StoredFunction

MAX_DEPTH = 8
"""Sequences nest at most this deep when they run (deploys refuse cycles; a race of two
deploys could still make one, and this ends it)."""
MAX_CHECKED = 1000
"""Functions a deploy-time check looks at before giving up on a sequence graph."""
THROTTLE_WAIT_S = 30.0
"""How long a step after the first waits out the tenant's limits before the sequence fails."""

Lookup = Callable[[str, str], Awaitable[StoredFunction | None]]
"""(tenant, name) -> the function as stored now, or None."""


class Invoke(Protocol):
    """Run one call of code and record it (`Invoker.invoke`): through `recorder`, or as a
    synchronous call (activation with usage) without one. Raises Throttled."""

    def __call__(
        self, request: InvokeRequest, recorder: Recorder | None = None
    ) -> Awaitable[InvokeResult]: ...


Record = Callable[[InvokeRequest, InvokeResult], Awaitable[None]]
"""Record a nested sequence's own activation (no usage: its steps are billed)."""


def merge_params(params: Mapping[str, Any], event: Any) -> Any:
    """A call's input: the default `params` under the event's keys (the event wins).

    A non-object event is left as it is.
    """
    if not params or not isinstance(event, Mapping):
        return event
    return {**params, **event}


def sequence_activation(request: InvokeRequest, result: InvokeResult) -> Activation:
    """The stored form of a sequence's own activation (it has no usage record)."""
    return activation_from(request, result)


async def component_problem(
    tenant: str, name: str, steps: Sequence[str], lookup: Lookup
) -> str | None:
    """Why a sequence `name` of `steps` cannot be deployed (a missing step, or a cycle
    back to `name` directly or through nested sequences), or None when it can."""
    checked: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(step, (name,)) for step in steps]
    while pending:
        step, path = pending.pop()
        if step in path:
            return f"sequence {name!r} makes a cycle: {' -> '.join((*path, step))}"
        if step in checked:
            continue
        if len(checked) >= MAX_CHECKED:
            return f"sequence {name!r} reaches more than {MAX_CHECKED} functions"
        checked.add(step)
        found = await lookup(tenant, step)
        if found is None:
            return f"sequence {name!r}: no function {step!r}"
        pending.extend((inner, (*path, step)) for inner in found.spec.sequence)
    return None


@dataclass
class SequenceRunner:
    """Runs calls: default params merged, sequences step by step."""

    lookup: Lookup
    invoke: Invoke
    record: Record
    new_id: Callable[[], str]
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    throttle_wait_s: float = THROTTLE_WAIT_S
    step: Step | None = None
    """How a step of code runs; None: through `invoke`, in this process."""

    async def call(self, request: InvokeRequest, recorder: Recorder | None = None) -> InvokeResult:
        """Run a call now: its function's params under its event, and a sequence's steps
        one after another (each step recorded as a synchronous call).

        The call's own record goes through `recorder` (the dispatcher, for a queued
        attempt), or without one as a synchronous call's: code with its usage, a
        sequence's own activation through `record`, without usage (its steps are billed).
        A recorder is handed sequence results too, and must not bill them.
        Raises Throttled when nothing could run (the caller answers 429 or defers).
        """
        request = with_params(request)
        if not request.function.sequence:
            return await self.invoke(request, recorder)
        result = await self.run(request)
        await (recorder.record if recorder is not None else self.record)(request, result)
        return result

    async def run(self, request: InvokeRequest, depth: int = 0) -> InvokeResult:
        """Run a sequence's steps on `request.args` (its params already merged); the
        caller records the result as the sequence's activation. Raises Throttled when
        its first step could not start."""
        spec = request.function
        start = self.wall()
        ids: list[str] = []
        value: Any = request.args
        cold = False

        def ended(status: Status, result: Any, error: str | None = None) -> InvokeResult:
            return _outcome(request, start, self.wall(), ids, cold, status, result, error)

        for index, name in enumerate(spec.sequence, start=1):
            label = f"step {index} ({name})"
            stored = await self.lookup(spec.tenant, name)
            if stored is None:
                return ended(Status.APPLICATION_ERROR, None, f"{label} no longer exists")
            if not isinstance(value, Mapping):
                kind = type(value).__name__
                error = f"{label} takes a JSON object; the step before returned {kind}"
                return ended(Status.APPLICATION_ERROR, value, error)
            step = InvokeRequest(
                activation_id=self.new_id(),
                function=stored.spec,
                args=merge_params(stored.spec.params, value),
                trigger=request.trigger,
            )
            try:
                result = await self._step(step, depth, first=not ids)
            except Throttled as exc:
                if not ids:
                    raise  # nothing ran: the whole call is refused (or deferred)
                return ended(Status.PLATFORM_ERROR, None, f"{label} was throttled: {exc.reason}")
            ids.append(step.activation_id)
            cold = cold or result.cold_start
            if result.status is not Status.SUCCESS:
                return ended(result.status, result.result, f"{label} failed: {result.error}")
            value = result.result
        return ended(Status.SUCCESS, value)

    async def _step(self, step: InvokeRequest, depth: int, *, first: bool) -> InvokeResult:
        """One step. A first step's Throttled goes up (nothing ran yet); a later step
        waits the limit out, within a budget, since the steps before it cannot be undone."""
        waited = 0.0
        while True:
            try:
                return await self._once(step, depth)
            except Throttled as exc:
                if first or waited + exc.retry_after_s > self.throttle_wait_s:
                    raise
                await self.sleep(exc.retry_after_s)
                waited += exc.retry_after_s

    async def _once(self, step: InvokeRequest, depth: int) -> InvokeResult:
        """Run one step: code, or a nested sequence (its activation recorded here)."""
        if not step.function.sequence:
            return await (self.invoke(step) if self.step is None else self.step(step))
        if depth + 1 >= MAX_DEPTH:
            now = self.wall()
            error = f"sequences nest deeper than {MAX_DEPTH} (a cycle?)"
            nested = _outcome(step, now, now, [], False, Status.APPLICATION_ERROR, None, error)
        else:
            nested = await self.run(step, depth + 1)
        await self.record(step, nested)
        return nested


def _outcome(
    request: InvokeRequest,
    start: float,
    end: float,
    ids: list[str],
    cold: bool,
    status: Status,
    result: Any,
    error: str | None,
) -> InvokeResult:
    """A sequence's result: its steps' activation ids as its logs, their total time."""
    return InvokeResult(
        activation_id=request.activation_id,
        status=status,
        result=result,
        error=error,
        logs=list(ids),
        start=start,
        end=end,
        duration_ms=round((end - start) * 1000, 3),
        init_ms=0.0,
        wait_ms=0.0,
        cold_start=cold,
        memory_mb=request.function.memory_mb,
    )


def stored_runner(
    store: Store,
    invoke: Invoke,
    new_id: Callable[[], str],
    wall: Callable[[], float] = time.time,
    step: Step | None = None,
) -> SequenceRunner:
    """The runner every entrance uses: functions as the store has them now, a nested
    sequence's own activation written behind the answer (as a synchronous call's is),
    steps of code run through `step` when given (else `invoke`)."""

    async def record(request: InvokeRequest, result: InvokeResult) -> None:
        await store.save_activation(sequence_activation(request, result), wait=False)

    return SequenceRunner(
        lookup=store.get_function,
        invoke=invoke,
        record=record,
        new_id=new_id,
        wall=wall,
        step=step,
    )


def with_params(request: InvokeRequest) -> InvokeRequest:
    """The request with its function's default params merged under its args."""
    merged = merge_params(request.function.params, request.args)
    return request if merged is request.args else replace(request, args=merged)
