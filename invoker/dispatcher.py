"""Async invocations: a durable queue in the store, drained by a dispatcher.

`submit` writes the pending activation and its queue entry in one transaction before
the caller is told 202, so an accepted call survives a crash. The dispatcher claims due
calls, runs them through the invoker, and records each attempt together with the queue
update (retry later, or done) in one transaction: a call completes exactly once as its
activation shows, though after a crash mid-call its function may run again (at least
once), as with every durable queue.

A queued call runs the version of its function resolved when it was accepted (its
pending activation's `version`), so an alias moved or a deploy made while it waits does
not change it (`Dispatcher._accepted`).

A claim is a lease held by this gateway's owner id and renewed while the call runs, so
gateways sharing one database never take each other's live calls: a restart requeues
only its own, and a gateway that dies for good has its calls claimed again once its
leases run out.

With several workers (`nimbus serve --workers N`, `ownership`), each accepted call is
tagged with the worker owning its function, and a worker's dispatcher claims only its own
calls (and unowned ones), so an async call runs in the worker holding its function's warm
containers. The dispatcher says its worker is alive with every heartbeat; the calls of a
worker silent past a grace period go to any worker, so none is lost with a worker gone
for good (the supervisor restarts a worker under the same index, which keeps its calls).

Claims are fair between tenants (`invoker.fairness`): the tenant with the fewest calls
running goes first, and the last free slot is kept for a tenant with nothing running
here, so a tenant with a thousand calls queued does not hold up another's one call. Each
tenant's calls
queued or running are bounded by its backlog limit (`backlog_for`): a submit past it
raises `BacklogFull` and stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from invoker.api import (
    Activation,
    ActivationIds,
    FunctionSpec,
    InvokeRequest,
    InvokeResult,
    Status,
    Throttled,
)
from invoker.fairness import claim_plan
from invoker.ownership import Ownership
from invoker.recorder import record_of
from invoker.sequences import sequence_activation, stored_runner
from invoker.service import Invoker
from invoker.step_routing import Step
from invoker.store.base import LEASE_S, QueuedCall, Store, StoredFunction
from invoker.store.queue import OWNER_GRACE_S

log = logging.getLogger("nimbus.dispatcher")

BACKLOG_RETRY_AFTER_S = 1.0  # a slot frees often; the caller should come back soon


class BacklogFull(Exception):
    """The tenant's async backlog has no room for the call(s): nothing was enqueued."""

    def __init__(self, tenant: str, backlog: int) -> None:
        super().__init__(f"tenant {tenant!r} has {backlog} async calls queued or running")
        self.tenant = tenant
        self.backlog = backlog
        self.retry_after_s = BACKLOG_RETRY_AFTER_S


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, failed async calls are tried again."""

    retries: int = 2
    backoff_s: float = 1.0
    factor: float = 2.0

    def retry_at(self, attempt: int, now: float) -> float | None:
        """When to try again after failed attempt number `attempt` (1-based), or None."""
        if attempt > self.retries:
            return None
        return now + self.backoff_s * self.factor ** (attempt - 1)


def pending_activation(activation_id: str, spec: FunctionSpec, trigger: str | None) -> Activation:
    """The record of an accepted call that has not run yet."""
    return Activation(
        id=activation_id,
        tenant=spec.tenant,
        function=spec.name,
        version=spec.version,
        status=Status.PENDING,
        result=None,
        error=None,
        logs=[],
        start=None,
        end=None,
        duration_ms=None,
        init_ms=None,
        wait_ms=None,
        cold_start=None,
        memory_mb=spec.memory_mb,
        trigger=trigger,
    )


RETRY_DUE_S = 0.05
"""How soon a due call this gateway could not claim is looked at again (sooner if woken)."""


class Dispatcher:
    """Drains the durable queue into the invoker with bounded concurrency."""

    def __init__(
        self,
        store: Store,
        invoker: Invoker,
        *,
        policy: RetryPolicy | None = None,
        max_in_flight: int = 16,
        poll_s: float = 0.5,
        billing_step_ms: int = 1,
        wall: Callable[[], float] = time.time,
        owner: str = "",
        lease_s: float = LEASE_S,
        backlog_for: Callable[[str], int | None] = lambda tenant: None,
        ownership: Ownership | None = None,
        owner_grace_s: float = OWNER_GRACE_S,
        step: Step | None = None,
    ) -> None:
        self._store = store
        self._ownership = ownership  # None: one process, its calls anyone's
        self._worker = ownership.worker if ownership is not None else None
        self._grace_s = owner_grace_s
        self._backlog_for = backlog_for  # a tenant's backlog limit (None: unbounded)
        self._owner = owner
        self._lease_s = lease_s
        self._claimed: dict[asyncio.Task[None], QueuedCall] = {}  # running here
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._policy = policy or RetryPolicy()
        self._max = max_in_flight
        self._poll_s = poll_s
        self._step_ms = billing_step_ms
        self._wall = wall
        self._wake = asyncio.Event()
        self._ids = ActivationIds()
        # The one call path (params, sequences) synchronous calls take too.
        self._calls = stored_runner(store, invoker.invoke, self._ids.next, wall, step)
        self._running: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.depth = 0  # last known queue depth, for metrics

    async def start(self) -> int:
        """Requeue calls a crashed run left running, then start draining; returns how many."""
        requeued = await self._store.requeue_running(self._owner)
        await self._alive()  # before claiming: the calls waiting for this worker stay its own
        self.depth = await self._store.queue_depth()
        self._loop_task = asyncio.create_task(self._drain(), name="nimbus-dispatcher")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="nimbus-leases")
        return requeued

    async def close(self) -> None:
        """Stop claiming; cancel calls in flight (they stay queued and run after a restart)."""
        for loop_task in (self._loop_task, self._heartbeat_task):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def submit(
        self, spec: FunctionSpec, args: Mapping[str, Any], *, trigger: str | None = None
    ) -> str:
        """Accept a call durably and return its activation id; it runs soon after.

        Raises BacklogFull (nothing stored) when the tenant's backlog has no room.
        """
        (activation_id,) = await self.submit_many([(spec, args)], trigger=trigger)
        return activation_id

    async def submit_many(
        self, calls: Sequence[tuple[FunctionSpec, Mapping[str, Any]]], *, trigger: str | None
    ) -> list[str]:
        """Accept calls of one tenant atomically: every one, or (BacklogFull) none."""
        if not calls:
            return []
        tenant = calls[0][0].tenant
        assert all(spec.tenant == tenant for spec, _ in calls), "one tenant per submit"
        pending = [
            (pending_activation(self._ids.next(), spec, trigger), args) for spec, args in calls
        ]
        backlog = self._backlog_for(tenant)
        owners = None
        if self._ownership is not None:
            owners = {spec.name: self._ownership.owner(spec.name) for spec, _ in calls}
        accepted = await self._store.enqueue_all(
            pending, self._wall(), backlog=backlog, owners=owners
        )
        if not accepted:
            raise BacklogFull(tenant, backlog or 0)
        self.depth += len(pending)
        self._wake.set()
        return [activation.id for activation, _ in pending]

    async def _drain(self) -> None:
        while True:
            try:
                claimed = await self._claim()
            except Exception:
                log.exception("claiming queued calls failed")
                claimed = 0
            full = len(self._running) >= self._max
            if claimed == 0 or full:
                await self._sleep(full)

    async def _claim(self) -> int:
        held = Counter(call.tenant for call in self._claimed.values())
        limit, skip = claim_plan(self._max - len(self._running), self._max, held)
        if limit <= 0:
            return 0
        calls = await self._store.claim(
            self._wall(),
            limit,
            owner=self._owner,
            lease_s=self._lease_s,
            skip=skip,
            worker=self._worker,
            grace_s=self._grace_s,
        )
        for call in calls:
            task = asyncio.create_task(self._run(call), name=f"async-{call.activation_id}")
            self._running.add(task)
            self._claimed[task] = call
            task.add_done_callback(self._done)
        return len(calls)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._claimed.pop(task, None)
        self._wake.set()  # a slot freed up: claim more

    async def _heartbeat(self) -> None:
        """Renew the leases of the calls running here, and say this worker is alive, three
        times per lease."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self._store.renew(
                    self._owner,
                    [call.activation_id for call in self._claimed.values()],
                    self._wall() + self._lease_s,
                )
                await self._alive()
            except Exception:  # the next beat tries again; a lease has two more to spare
                log.exception("renewing async call leases failed")

    async def _alive(self) -> None:
        if self._worker is not None:
            await self._store.mark_worker_alive(self._worker, self._wall())

    async def _sleep(self, full: bool) -> None:
        """Until woken (a call queued, a slot freed) or the next call falls due. Full, only a
        freed slot helps; a due call that was not claimed (its tenant holds its share, or
        another gateway took it) is looked at again after `RETRY_DUE_S`, not in a spin."""
        self._wake.clear()
        timeout = self._poll_s
        # Only calls this worker may take now: another's due call would never let it sleep.
        due = None if full else await self._store.next_due(self._worker)
        if due is not None:
            timeout = min(timeout, max(RETRY_DUE_S, due - self._wall()))
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
        # that races the wake-up, and close() would then wait for this loop forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _run(self, call: QueuedCall) -> None:
        try:
            await self._attempt(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never lose it: its lease is no longer renewed, so once the lease runs out the
            # call is claimed again (here or by another gateway) and tried afresh.
            log.exception("async call %s failed in the platform", call.activation_id)

    async def _accepted(self, call: QueuedCall) -> tuple[StoredFunction | None, str]:
        """The version an accepted call runs: the one resolved when it was accepted (its
        pending activation's), though an alias has moved or a deploy came since; None,
        and why, when that version (or the function) is gone."""
        latest = await self._store.get_function(call.tenant, call.function)
        if latest is None:
            return None, f"function {call.function!r} no longer exists"
        accepted = await self._store.get_activation(call.tenant, call.activation_id)
        if accepted is None or accepted.version in (0, latest.spec.version):
            return latest, ""
        pinned = await self._store.get_version(call.tenant, call.function, accepted.version)
        if pinned is None:
            return None, f"version {accepted.version} of {call.function!r} no longer exists"
        return pinned, ""

    async def _attempt(self, call: QueuedCall) -> None:
        stored, missing = await self._accepted(call)
        attempt = call.attempts + 1
        if stored is None:
            gone = replace(
                pending_activation(call.activation_id, _ghost(call), call.trigger),
                status=Status.PLATFORM_ERROR,
                dead_letter=True,
                error=missing,
                attempts=attempt,
                start=self._wall(),
                end=self._wall(),
            )
            await self._store.finish_attempt(gone, None, None, owner=self._owner)
            self.depth = max(0, self.depth - 1)
            return
        if attempt > self._policy.retries + 1:
            # Every attempt so far was lost with the gateway running it: do not run it again.
            lost = replace(
                pending_activation(call.activation_id, stored.spec, call.trigger),
                status=Status.PLATFORM_ERROR,
                dead_letter=True,
                error=f"gave up after {call.attempts} attempts: the platform stopped "
                "while running each of them",
                attempts=call.attempts,
                start=self._wall(),
                end=self._wall(),
            )
            await self._store.finish_attempt(lost, None, None, owner=self._owner)
            self.depth = max(0, self.depth - 1)
            return
        request = InvokeRequest(
            activation_id=call.activation_id,
            function=stored.spec,
            args=call.args,
            trigger=call.trigger,
            attempt=attempt,
        )
        try:
            await self._calls.call(request, recorder=self)  # the attempt is ours to record
        except Throttled as exc:
            await self._store.defer(
                call.activation_id, self._wall() + exc.retry_after_s, owner=self._owner
            )

    async def record(self, request: InvokeRequest, result: InvokeResult) -> None:
        """Record an attempt with its queue update: done, retried later (a sequence from
        its first step), or dead-lettered. A sequence's attempt carries no usage: its
        steps were billed as the calls they are."""
        activation: Activation
        usage: Mapping[str, Any] | None
        if request.function.sequence:
            activation, usage = sequence_activation(request, result), None
        else:
            done = record_of(request, result, step_ms=self._step_ms)
            activation, usage = done.activation, done.usage
        retry_at = None
        if result.status is not Status.SUCCESS:
            retry_at = self._policy.retry_at(request.attempt, self._wall())
            if retry_at is None:
                # The status stays what the last attempt did; dead_letter marks the give-up.
                activation = replace(
                    activation,
                    dead_letter=True,
                    error=f"gave up after {request.attempt} attempts: {result.error}",
                )
            else:
                activation = replace(
                    activation,
                    status=Status.PENDING,
                    error=f"attempt {request.attempt} failed ({result.status.value}): "
                    f"{result.error}; retrying",
                )
        await self._store.finish_attempt(activation, usage, retry_at, owner=self._owner)
        if retry_at is None:
            self.depth = max(0, self.depth - 1)


def _ghost(call: QueuedCall) -> FunctionSpec:
    """A stand-in spec to record the fate of a call whose function was deleted."""
    return FunctionSpec(
        tenant=call.tenant,
        name=call.function,
        version=0,
        runtime="",
        handler="",
        code_sha256="",
        code_kind="source",
    )
