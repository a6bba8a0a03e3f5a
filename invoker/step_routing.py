"""Where a sequence's step of code runs under `nimbus serve --workers N`: in the worker
owning the step's function, whichever worker runs the sequence.

A function's warm containers live in its owner (`invoker/ownership.py`). A sequence runs
in its own owner, so a step of a function another worker owns is sent there (`Relay`, a
transport the gateway provides), to be run, recorded, metered and billed by the owner as
any call of it is. The choice and what a failed hand-over means are decided here, free of
any transport:

- owned here: run locally;
- the owner could not be reached, nothing was sent (`Unreachable`: it is being replaced):
  run locally rather than fail the sequence;
- the owner was reached but its answer was lost (`Lost`): the step may have run, so it is
  never run again; it fails as a platform error, and the sequence stops there;
- `Throttled` from the owner goes up as it would locally (the sequence waits or fails).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from invoker.api import InvokeRequest, InvokeResult, Status
from invoker.ownership import Ownership

log = logging.getLogger("nimbus.invoker")

Step = Callable[[InvokeRequest], Awaitable[InvokeResult]]
"""Run one step of code and record it as a synchronous call is. Raises Throttled."""


class Unreachable(Exception):
    """The owner could not be reached: nothing of the step was sent."""


class Lost(Exception):
    """The owner was reached but no answer came back: the step may have run."""


class Relay(Protocol):
    """Send a step to worker `worker` and return its result there. Raises Throttled (the
    owner's limits said no), Unreachable or Lost."""

    def __call__(self, worker: int, request: InvokeRequest) -> Awaitable[InvokeResult]: ...


def step_runner(local: Step, relay: Relay | None, ownership: Ownership | None) -> Step | None:
    """How this process runs a sequence's steps of code: None (through the invoker, here)
    for a single process or without a relay; else each in its function's owner."""
    if relay is None or ownership is None:
        return None
    return routed_steps(local, relay, ownership)


def routed_steps(
    local: Step, relay: Relay, ownership: Ownership, wall: Callable[[], float] = time.time
) -> Step:
    """A step runner running each step in its function's owner: `local` when that is
    this worker (or the owner cannot be reached), `relay` otherwise."""

    async def step(request: InvokeRequest) -> InvokeResult:
        owner = ownership.owner(request.function.name)
        if owner == ownership.worker:
            return await local(request)
        try:
            return await relay(owner, request)
        except Unreachable as exc:
            log.warning("worker %d unreachable (%s): running the step here", owner, exc)
            return await local(request)
        except Lost as exc:
            log.warning("worker %d failed during a step: %s", owner, exc)
            return lost_step(request, wall())

    return step


def lost_step(request: InvokeRequest, now: float) -> InvokeResult:
    """PURE: a step whose owner stopped answering while it ran: a platform error."""
    return InvokeResult(
        activation_id=request.activation_id,
        status=Status.PLATFORM_ERROR,
        result=None,
        error="the worker running this step stopped",
        logs=[],
        start=now,
        end=now,
        duration_ms=0.0,
        init_ms=0.0,
        wait_ms=0.0,
        cold_start=False,
        memory_mb=request.function.memory_mb,
    )
