"""One call through the invoker: a container decided, waited for, /run, and its outcome.

request -> pool decision (warm, stem cell, cold, wait, reject) -> the slot's container,
loaded by the lifecycle if need be -> thaw, meter, /run -> keep-alive decision ->
`InvokeResult`; the container is frozen once idle for `FREEZE_GRACE_S`. Recording the
result is the caller's (`Invoker.invoke`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from invoker import replies
from invoker.api import FunctionSpec, InvokeRequest, InvokeResult, Status, Throttled
from invoker.containers.ballooning import Balloons
from invoker.containers.keepalive_memory import KeepAliveMemory
from invoker.containers.lifecycle import INIT_TIMEOUT_S, ContainerLifecycle
from invoker.containers.model import Prewarm, demand_of
from invoker.containers.pool import Cold, Demand, Pool, Reject, Specialise, Wait, Warm
from invoker.containers.slots import Failure, FunctionKey, Slot, State
from invoker.drivers.base import ContainerDriver, ContainerStats
from invoker.metrics import InvokerMetrics
from invoker.records import CallTiming, outcome_of
from invoker.runtime_client import ProxyError, ReplyTooLarge, RuntimeClient, RunTimeout

log = logging.getLogger("nimbus.invoker")

# Slack on top of the function's own timeout for the HTTP round trip to the proxy.
TRANSPORT_SLACK_S = 0.5
START_TIMEOUT_S = 60.0  # bounds a caller's wait for a container being started
MAX_DEMANDS = 4096  # versions whose demand is kept; past it the cache starts afresh
FREEZE_GRACE_S = 0.01
"""How long a container stays thawed after its last call ends. A call that arrives within
it (back-to-back calls) skips the thaw and freeze, ~0.3 ms of kernel CPU; what a call left
running gets at most this long of CPU time before it stops (docs/security.md)."""


class IdleFreezer:
    """Freezes a container once no call has been inside it for the grace period.

    One timer per container at most: a call that ends while one is pending only moves the
    container's last end forward, and the timer re-arms for the rest when it fires.
    """

    def __init__(self, grace_s: float, freeze: Callable[[Slot], None]) -> None:
        self._grace = grace_s
        self._freeze = freeze
        self._ended: dict[str, float] = {}  # slot id -> when its last call ended
        self._timers: set[str] = set()

    def call_ended(self, slot: Slot) -> None:
        """The call left `slot`: freeze it when it stays idle for the grace period."""
        if slot.running:
            return  # the last call inside it arms the timer
        if self._grace <= 0:
            self._freeze(slot)
            return
        loop = asyncio.get_running_loop()
        self._ended[slot.id] = loop.time()
        if slot.id not in self._timers:
            self._timers.add(slot.id)
            loop.call_later(self._grace, self._due, slot)

    def _due(self, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        left = self._ended[slot.id] + self._grace - loop.time()
        if slot.running == 0 and left > 0:  # a call came and went meanwhile
            loop.call_later(left, self._due, slot)
            return
        self._timers.discard(slot.id)
        del self._ended[slot.id]
        # Not a container on its way out: its removal thaws it before the kill.
        if slot.running == 0 and slot.state is not State.REMOVING:
            self._freeze(slot)


class CallPath:
    """Runs calls in the pool's containers and says how each went (it records nothing)."""

    def __init__(
        self,
        pool: Pool,
        lifecycle: ContainerLifecycle,
        driver: ContainerDriver,
        client: RuntimeClient,
        memory: KeepAliveMemory,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        token_for: Callable[[FunctionSpec, float], str] | None = None,
        metrics: InvokerMetrics | None = None,
        balloons: Balloons | None = None,
    ) -> None:
        self._pool = pool
        self._slots = pool.slots
        self._life = lifecycle
        self._driver = driver
        self._client = client
        self._memory = memory
        self._clock = clock
        self._wall = wall
        self._token_for = token_for
        self._metrics = metrics
        self._balloons = balloons
        self._freezer = IdleFreezer(FREEZE_GRACE_S, lifecycle.freeze_if_idle)
        # The demand of each version called lately, for the very spec it was made from:
        # every warm call would otherwise build the same one again.
        self._demands: dict[FunctionKey, tuple[FunctionSpec, Demand]] = {}

    def _demand(self, spec: FunctionSpec) -> Demand:
        """What a call of `spec` needs from the pool (`demand_of`), made once per spec."""
        key = spec.key
        known = self._demands.get(key)
        if known is not None and known[0] is spec:
            return known[1]
        if len(self._demands) >= MAX_DEMANDS:
            self._demands.clear()
        demand = demand_of(spec)
        self._demands[key] = (spec, demand)
        return demand

    async def call(self, request: InvokeRequest) -> InvokeResult:
        """Run one call to completion. Raises Throttled (nothing ran)."""
        spec = request.function
        wall_start, t0 = self._wall(), self._clock()
        demand = self._demand(spec)
        self._memory.observe(spec, t0)
        self._life.cancel_prewarm(demand.key)
        while True:
            decision = await self._decide(demand, t0)
            wait_ms = (self._clock() - t0) * 1000
            # No await from the decision to `_run_on`'s first one, but for inflating a
            # deflated container: the slot is the call's (busy) and cannot go meanwhile.
            if isinstance(decision, Cold):
                slot = self._life.start_for_call(spec, decision.evict)
            elif isinstance(decision, Specialise):
                slot = self._life.specialise(decision.slot, spec)
            else:
                slot = self._slots[decision.slot]
                if self._balloons is not None and not await self._inflated(spec, slot):
                    continue  # its node cannot hold it at full size: decide again
            return await self._run_on(request, slot, wall_start, t0, wait_ms)

    async def _inflated(self, spec: FunctionSpec, slot: Slot) -> bool:
        """The warm container is at its full memory for the call; False when its node could
        not hold it so even after evictions: the container goes, the call goes elsewhere."""
        if self._balloons is None or not self._balloons.deflated(slot.id):
            return True
        if await self._balloons.before_call(slot):
            return True
        self._pool.abandoned(slot.id, spec.tenant)
        await self._life.remove([slot.id])
        return False

    async def _decide(self, demand: Demand, t0: float) -> Warm | Specialise | Cold:
        """The pool's decision for the call, waiting (bounded) while it says wait."""
        give_up = t0 + self._pool.limits.max_wait_s
        while True:
            decision = self._pool.decide(demand, self._clock())
            if isinstance(decision, Reject):
                raise Throttled(decision.reason, decision.retry_after_s)
            if not isinstance(decision, Wait):
                return decision
            left = give_up - self._clock()
            if left <= 0:
                raise Throttled("no container of the function freed up in time", 1.0)
            await self._life.wait_for(demand.key, min(decision.seconds, left))

    async def _run_on(
        self, request: InvokeRequest, slot: Slot, wall_start: float, t0: float, wait_ms: float
    ) -> InvokeResult:
        spec = request.function
        timing = CallTiming(wall_start, t0, wait_ms, cold=not slot.ready.is_set())
        if timing.cold:  # a warm container is ready: no timer to arm and cancel
            waited_from = self._clock()
            try:
                async with asyncio.timeout(INIT_TIMEOUT_S + START_TIMEOUT_S):
                    await slot.ready.wait()
            except TimeoutError:
                if slot.init_error is None:
                    slot.failed(Failure.PLATFORM, "container start timed out")
            timing.init_ms = (self._clock() - waited_from) * 1000
        handle = slot.handle
        if slot.init_failure is not None or handle is None:
            return await self._not_started(request, slot, timing)
        payload = self._payload(request)
        alone = slot.in_flight == 1
        cgroup = self._driver.call_meter(handle)
        if cgroup is not None and slot.running == 0:
            cgroup.thaw()
        slot.running += 1
        # Measure only a call that has the container to itself: figures are per container.
        gauge = cgroup if alone else None
        if gauge is not None:
            gauge.start()
        timing.run_start = self._clock()
        try:
            resp = await self._client.run(
                handle.address, payload, spec.timeout_s + TRANSPORT_SLACK_S
            )
        except RunTimeout:
            timeout = f"the function did not finish within its timeout of {spec.timeout_s:g} s"
            return await self._failed(request, slot, timing, Status.TIMEOUT, timeout)
        except ReplyTooLarge:
            too_large = replies.result_too_large()
            return await self._failed(request, slot, timing, Status.APPLICATION_ERROR, too_large)
        except ProxyError as exc:
            reason = await self._driver.ended(handle)
            log.info("container %s ended during a call (%s): %s", slot.id, reason, exc)
            ended = replies.container_ended(spec.memory_mb, reason)
            return await self._failed(request, slot, timing, Status.APPLICATION_ERROR, ended)
        finally:
            slot.running -= 1
        usage = gauge.stop() if gauge is not None else None
        self._after_run(spec, slot, timing.run_start)
        logs = replies.bounded_logs(resp.body.get("logs"))
        result = resp.body.get("result")
        error = None if resp.ok else replies.function_error(resp.body, resp.status)
        if error is None:
            error = replies.oversized_result(resp.size, result)
        if error is None:
            return self._finish(request, timing, slot, Status.SUCCESS, result, None, logs, usage)
        return self._finish(
            request, timing, slot, Status.APPLICATION_ERROR, None, error, logs, usage
        )

    def _payload(self, request: InvokeRequest) -> dict[str, Any]:
        """What /run receives: the event and the call's context."""
        spec = request.function
        payload: dict[str, Any] = {
            "value": dict(request.args),
            "activation_id": request.activation_id,
            "deadline": int((self._wall() + spec.timeout_s) * 1000),
            "function_name": spec.name,
            "function_version": spec.version,
            "memory_limit_mb": spec.memory_mb,
        }
        if self._token_for is not None:
            payload["api_token"] = self._token_for(spec, self._wall())
        return payload

    def _after_run(self, spec: FunctionSpec, slot: Slot, run_start: float) -> None:
        """The call left its container: keep it warm, retire it, or plan a pre-warm."""
        now = self._clock()
        decision = self._memory.decide(spec, now)
        # With a pre-warm planned, this container goes now and a fresh one comes back later.
        hold = 0.0 if decision.prewarm_after_s is not None else decision.keep_alive_s
        if self._pool.released(slot.id, spec.tenant, now, hold, now - run_start):
            self._life.remove_soon(slot.id)
        elif decision.prewarm_after_s is not None and slot.state is State.IDLE:
            self._life.plan_prewarm(
                Prewarm(spec, now + decision.prewarm_after_s, now + decision.keep_alive_s)
            )
        self._freezer.call_ended(slot)
        self._life.wake(spec.key)

    async def _not_started(
        self, request: InvokeRequest, slot: Slot, timing: CallTiming
    ) -> InvokeResult:
        """The call's container never became ready: throttle, or record whose failure."""
        failure, detail = slot.init_failure, slot.init_error or ""
        if failure is Failure.NO_CAPACITY:
            self._pool.abandoned(slot.id, request.function.tenant)
            await self._life.remove([slot.id])
            raise Throttled(f"no capacity: {detail}", 1.0)
        if failure is Failure.FUNCTION:
            error, status = f"init failed: {detail}", Status.APPLICATION_ERROR
        else:
            log.warning("activation %s: %s", request.activation_id, detail)
            error, status = replies.PLATFORM_START_FAILED, Status.PLATFORM_ERROR
        return await self._failed(request, slot, timing, status, error)

    async def _failed(
        self, request: InvokeRequest, slot: Slot, timing: CallTiming, status: Status, error: str
    ) -> InvokeResult:
        """The call did not complete normally in its container: drop the container, say so."""
        self._pool.abandoned(slot.id, request.function.tenant)
        await self._life.remove([slot.id])
        return self._finish(request, timing, slot, status, None, error, [])

    def _finish(
        self,
        request: InvokeRequest,
        timing: CallTiming,
        slot: Slot,
        status: Status,
        result: Any,
        error: str | None,
        logs: list[str],
        usage: ContainerStats | None = None,
    ) -> InvokeResult:
        node = slot.handle.node if slot.handle is not None else None
        outcome = outcome_of(
            request, timing, self._clock(), node, status, result, error, logs, usage
        )
        if self._metrics is not None:
            self._metrics.observe(request.function, outcome)
        return outcome
