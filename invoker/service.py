"""The invoker: async glue between the pool's decisions, a driver, the runtime client and the store.

Data flows one way through `invoke`: request -> pool decision -> container (warm, stem
cell or cold) -> /run -> result -> activation + usage record in the store -> caller.
Background work (reaping idle containers, refilling stem cells) runs in tasks the
invoker owns and cancels on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from invoker import replies
from invoker.api import FunctionSpec, InvokeRequest, InvokeResult, Status, Throttled
from invoker.containers.keepalive import FixedTTL, KeepAlivePolicy
from invoker.containers.model import (
    Container,
    Failure,
    Prewarm,
    container_spec,
    demand_of,
    policy_key,
)
from invoker.containers.pool import Cold, Pool, PoolLimits, Reject, Slot, Specialise, State, Wait
from invoker.drivers.base import (
    ContainerDriver,
    ContainerHandle,
    ContainerSpec,
    ContainerStats,
    DriverError,
)
from invoker.metrics import InvokerMetrics
from invoker.nodes.model import NoCapacity
from invoker.nodes.node_pool import NodePool
from invoker.nodes.placement import NodeState
from invoker.providers.local import host_memory_mb
from invoker.recorder import Recorder, StoreRecorder
from invoker.records import CallTiming, outcome_of
from invoker.runtime_client import ProxyError, ReplyTooLarge, RuntimeClient, RunTimeout
from invoker.store.base import Store

log = logging.getLogger("nimbus.invoker")

# Slack on top of the function's own timeout for the HTTP round trip to the proxy.
TRANSPORT_SLACK_S = 0.5
INIT_TIMEOUT_S = 60.0
START_TIMEOUT_S = 60.0  # bounds a caller's wait for a container being started


@dataclass(frozen=True)
class InvokerConfig:
    """Tunables of the invoker."""

    owner: str  # labels every container; one data dir = one owner
    limits: PoolLimits = field(default_factory=PoolLimits)
    billing_step_ms: int = 1
    node: str = "local"  # where containers run until a VM pool places them
    host_cpus: float = float(os.cpu_count() or 1)
    stem_cells: tuple[tuple[str, int, int], ...] = (("python:3.11", 128, 2),)
    """(runtime, memory_mb, count) of generic containers kept started."""
    reap_interval_s: float = 1.0
    keep_alive_save_s: float = 60.0  # a crash loses at most this much of what was learned
    api_socket_dir: str | None = None  # where the gateway's api.sock lives, for callbacks


class Invoker:
    """Runs invocations in pooled containers and records them."""

    def __init__(
        self,
        driver: ContainerDriver,
        client: RuntimeClient,
        store: Store,
        config: InvokerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        metrics: InvokerMetrics | None = None,
        keep_alive: KeepAlivePolicy | None = None,
        token_for: Callable[[FunctionSpec, float], str] | None = None,
        nodes: NodePool | None = None,
    ) -> None:
        self._driver = driver
        self._client = client
        self._store = store
        self._config = config
        self._clock = clock
        self._wall = wall
        self._keep_alive: KeepAlivePolicy = keep_alive or FixedTTL(600.0)
        self._learned: set[tuple[str, str]] = set()  # histories changed since the last save
        self._saved_at = 0.0
        self._prewarms: dict[tuple[str, str, int], Prewarm] = {}
        self.instance_id = uuid.uuid4().hex
        self.pool = Pool(config.limits)
        self._containers: dict[str, Container] = {}
        self._pulses: dict[tuple[str, str, int], asyncio.Event] = {}
        self._names = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: asyncio.Task[None] | None = None
        self._metrics = metrics
        self._token_for = token_for
        self.nodes = nodes
        self._recorder = StoreRecorder(store, step_ms=config.billing_step_ms)

    @property
    def driver(self) -> ContainerDriver:
        return self._driver

    @property
    def keep_alive(self) -> KeepAlivePolicy:
        """The keep-alive policy and what it has learned."""
        return self._keep_alive

    # ---- lifecycle ----

    async def start(self) -> int:
        """Remove containers a previous run left behind, then start the background loop."""
        removed = await self._driver.remove_orphans(self._config.owner, self.instance_id)
        await self._restore_keep_alive()
        self._saved_at = self._clock()
        self._background = asyncio.create_task(self._maintain(), name="nimbus-pool-maintenance")
        return removed

    async def close(self) -> None:
        """Stop background work and remove every container this invoker started."""
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        everything = list(self._containers.values())
        self._containers.clear()
        await asyncio.gather(*(self._destroy(c) for c in everything), return_exceptions=True)
        try:
            await self.save_keep_alive()
        except Exception:  # stopping must not fail over it; at most a minute is lost
            log.exception("could not save what keep-alive learned")

    async def _restore_keep_alive(self) -> None:
        """Pick up what the keep-alive policy learned before the last stop."""
        policy = self._keep_alive
        restored = 0
        for tenant, function, state in await self._store.load_keepalive(policy.name):
            try:
                policy.restore_state((tenant, function), state)
                restored += 1
            except (ValueError, KeyError, TypeError) as exc:  # other bins, or damaged
                log.warning("keep-alive history of %s/%s not restored: %s", tenant, function, exc)
        if restored:
            log.info("restored the keep-alive history of %d functions", restored)

    async def save_keep_alive(self) -> int:
        """Store the histories that changed since the last save; returns how many."""
        keys, self._learned = self._learned, set()
        states = [
            (tenant, function, state)
            for tenant, function in sorted(keys)
            if (state := self._keep_alive.export_state((tenant, function))) is not None
        ]
        try:
            await self._store.save_keepalive(self._keep_alive.name, states, self._wall())
        except BaseException:  # failed or cancelled: these are still to be saved
            self._learned |= {(t, f) for t, f, _ in states}
            raise
        self._saved_at = self._clock()
        return len(states)

    def set_tenant_caps(self, caps: Mapping[str, int]) -> None:
        """Per-tenant limits on calls in flight, as an admin set them (others: default)."""
        self.pool.tenant_caps = dict(caps)

    def forget(self, tenant: str, name: str) -> None:
        """The function is deleted: drop what keep-alive learned of it."""
        self._keep_alive.forget((tenant, name))
        self._learned.discard((tenant, name))

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _maintain(self) -> None:
        """Reap expired idle containers and keep stem cells stocked, forever."""
        while True:
            try:
                await self.reap()
                await self.run_prewarms()
                await self.refill_stems()
                await self.consolidate()
                if self._clock() - self._saved_at >= self._config.keep_alive_save_s:
                    await self.save_keep_alive()
            except Exception:  # the loop must outlive any one failure
                log.exception("pool maintenance failed")
            await asyncio.sleep(self._config.reap_interval_s)

    async def reap(self) -> int:
        """Remove idle containers whose keep-alive ran out; returns how many."""
        expired = self.pool.expired(self._clock())
        await self._remove(expired)
        return len(expired)

    async def run_prewarms(self) -> int:
        """Start the function containers whose keep-alive decision asked for a pre-warm."""
        now = self._clock()
        due = [p for p in self._prewarms.values() if p.at <= now]
        for prewarm in due:
            del self._prewarms[prewarm.spec.key]
            if now >= prewarm.until or self.pool.of(prewarm.spec.key):
                continue  # too late, or a call already brought a container
            slot = self._new_name()
            self.pool.starting_for(slot, demand_of(prewarm.spec), now)
            placeholder = ContainerHandle(id="", name=slot, address="")
            container = Container(slot=slot, handle=placeholder, spec=prewarm.spec)
            self._containers[slot] = container
            self._spawn(self._start_for(container, idle_until=prewarm.until), f"prewarm-{slot}")
        return len(due)

    async def consolidate(self) -> list[str]:
        """Drain under-used nodes (their idle containers go, busy ones finish), release empty
        ones; returns the nodes released."""
        if self.nodes is None:
            return []
        needed = await self.nodes.nodes_needed()
        for node_id in self.nodes.plan_consolidation(needed):
            self.nodes.drain(node_id)
            log.info("draining node %s to consolidate", node_id)
        draining = [n.id for n in self.nodes.nodes.values() if n.state is NodeState.DRAINING]
        for node_id in draining:
            await self._remove(self.pool.retire_ids(self.nodes.containers_on(node_id)))
        return await self.nodes.release_drained()

    async def drain_node(self, node_id: str) -> None:
        """Operator: stop placing on a node; it is released once its calls finish."""
        if self.nodes is None:
            raise KeyError(node_id)
        self.nodes.drain(node_id)
        await self.consolidate()

    async def refill_stems(self) -> None:
        """Start stem cells until each configured (runtime, memory) has its count."""
        wanted = {(rt, mem): n for rt, mem, n in self._config.stem_cells}
        for runtime, memory_mb in self.pool.stem_deficit(wanted):
            slot = self._new_name()
            self.pool.starting(slot, None, runtime, memory_mb, self._clock())
            handle = None
            try:
                cspec = await self._placed_spec(slot, runtime, memory_mb)
                handle = await self._driver.create(cspec)
                self._client.trust(handle.address, handle.token)
            except (DriverError, NoCapacity, ProxyError) as exc:
                if handle is not None:
                    await self._destroy(Container(slot=slot, handle=handle))
                self.pool.removed(slot)
                self._unplace(slot)
                log.warning("could not start a stem cell: %s", exc)
                return
            container = Container(slot=slot, handle=handle)
            container.ready.set()
            self._containers[slot] = container
            self.pool.prewarmed(slot)

    # ---- views ----

    def container_states(self) -> dict[str, int]:
        """Containers by state (prewarm, initializing, idle, busy, removing)."""
        return self.pool.counts()

    def containers(self, tenant: str | None = None, name: str | None = None) -> list[Container]:
        """Live function containers, optionally of one tenant's function."""
        return [
            c
            for c in self._containers.values()
            if c.spec is not None
            and (tenant is None or c.spec.tenant == tenant)
            and (name is None or c.spec.name == name)
        ]

    async def retire(self, tenant: str, name: str) -> None:
        """Remove a function's containers: idle ones now, busy ones when their calls end."""
        await self._remove(self.pool.retire(tenant, name))

    # ---- the call path ----

    async def invoke(
        self, request: InvokeRequest, recorder: Recorder | None = None
    ) -> InvokeResult:
        """Run one call to completion and record it through `recorder` (by default this
        invoker's own, for synchronous calls). Raises Throttled (nothing recorded)."""
        result = await self._call(request)
        await (recorder or self._recorder).record(request, result)
        return result

    async def _call(self, request: InvokeRequest) -> InvokeResult:
        spec = request.function
        demand = demand_of(spec)
        wall_start, t0 = self._wall(), self._clock()
        key = policy_key(spec)
        self._keep_alive.observe(key, t0)
        self._learned.add(key)
        self._prewarms.pop(spec.key, None)
        give_up = t0 + self._config.limits.max_wait_s
        while True:
            decision = self.pool.decide(demand, self._clock())
            if isinstance(decision, Reject):
                raise Throttled(decision.reason, decision.retry_after_s)
            if not isinstance(decision, Wait):
                break
            left = give_up - self._clock()
            if left <= 0:
                raise Throttled("no container of the function freed up in time", 1.0)
            await self._wait_for(spec.key, min(decision.seconds, left))
        wait_ms = (self._clock() - t0) * 1000

        if isinstance(decision, Cold):
            # Book-keeping first, all before any await, so no other call sees stale memory.
            evicted = self.pool.removing(decision.evict)
            slot = self._new_name()
            self.pool.starting(slot, demand, spec.runtime, spec.memory_mb, self._clock())
            placeholder = ContainerHandle(id="", name=slot, address="")
            container = Container(slot=slot, handle=placeholder, spec=spec)
            self._containers[slot] = container
            if evicted:
                self._spawn(self._discard(evicted), name=f"evict-for-{slot}")
            self._spawn(self._start_for(container), name=f"start-{slot}")
        elif isinstance(decision, Specialise):
            slot = decision.slot
            container = self._containers[slot]
            container.spec = spec
            container.ready.clear()
            self._spawn(self._specialise(container), name=f"init-{slot}")
        else:
            slot = decision.slot
        return await self._run_on(request, slot, wall_start, t0, wait_ms)

    async def _start_for(self, container: Container, idle_until: float | None = None) -> None:
        """Create a container for its function, /init it, and open it to its reserved calls."""
        spec = container.spec
        assert spec is not None
        t = self._clock()
        try:
            cspec = await self._placed_spec(container.slot, spec.runtime, spec.memory_mb, spec)
            container.handle = await self._driver.create(cspec)
            self._client.trust(container.handle.address, container.handle.token)
        except Exception as exc:  # whatever went wrong, the calls waiting must be answered
            if container.handle.id:  # started, then refused: remove it now
                await self._destroy(container)
                container.handle = ContainerHandle(id="", name=container.slot, address="")
            self._unplace(container.slot)
            if isinstance(exc, NoCapacity):
                container.failed(Failure.NO_CAPACITY, str(exc))
            else:
                container.failed(Failure.PLATFORM, f"could not start a container: {exc}")
            log.warning("no container for %s/%s: %s", spec.tenant, spec.name, exc)
            container.ready.set()
            self._pulse(spec.key)
            if idle_until is not None:  # a pre-warm nobody waits for: clean up now
                await self._remove([container.slot])
            return
        await self._init(container, started=t, idle_until=idle_until)
        if idle_until is not None and container.init_error is not None:
            await self._remove([container.slot])

    async def _specialise(self, container: Container) -> None:
        await self._init(container, started=self._clock())

    async def _init(
        self, container: Container, started: float, idle_until: float | None = None
    ) -> None:
        spec = container.spec
        assert spec is not None
        try:
            code = await self._store.get_code(spec.code_sha256)
            if code is None:
                raise DriverError(f"code blob {spec.code_sha256} is missing from the store")
            env = {
                **spec.env,
                "NIMBUS_FUNCTION_NAME": spec.name,
                "NIMBUS_FUNCTION_VERSION": str(spec.version),
            }
            resp = await self._client.init(
                container.handle.address,
                code=code,  # raw: the client encodes it, off the event loop when large
                binary=spec.code_kind == "zip",
                main=spec.handler,
                env=env,
                timeout=INIT_TIMEOUT_S,
            )
            if not resp.ok:
                container.failed(Failure.FUNCTION, replies.function_error(resp.body, resp.status))
        except Exception as exc:  # never leave reserved calls waiting on `ready`
            container.failed(Failure.PLATFORM, f"/init failed: {exc}")
            log.warning("loading %s/%s failed: %s", spec.tenant, spec.name, exc)
        container.init_ms = (self._clock() - started) * 1000
        if container.init_error is None:
            self.pool.initialized(container.slot, container.init_ms / 1000, idle_until)
            self._freeze_if_idle(container)
        container.ready.set()
        self._pulse(spec.key)

    async def _run_on(
        self, request: InvokeRequest, slot: str, wall_start: float, t0: float, wait_ms: float
    ) -> InvokeResult:
        spec = request.function
        tenant = spec.tenant
        container = self._containers[slot]
        timing = CallTiming(wall_start, t0, wait_ms, cold=not container.ready.is_set())
        waited_from = self._clock()
        if timing.cold:  # a warm container is ready: no timer to arm and cancel
            try:
                async with asyncio.timeout(INIT_TIMEOUT_S + START_TIMEOUT_S):
                    await container.ready.wait()
            except TimeoutError:
                if container.init_error is None:
                    container.failed(Failure.PLATFORM, "container start timed out")
        timing.init_ms = (self._clock() - waited_from) * 1000 if timing.cold else 0.0
        if container.init_failure is not None:
            return await self._not_started(request, slot, timing, container)
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
        slot_view = self.pool.slots.get(slot)
        alone = slot_view is not None and slot_view.in_flight == 1
        cgroup = self._driver.call_meter(container.handle)
        if cgroup is not None and container.running == 0:
            cgroup.thaw()
        container.running += 1
        # Measure only a call that has the container to itself: figures are per container.
        gauge = cgroup if alone else None
        if gauge is not None:
            gauge.start()
        timing.run_start = self._clock()
        try:
            resp = await self._client.run(
                container.handle.address, payload, spec.timeout_s + TRANSPORT_SLACK_S
            )
        except RunTimeout:
            timeout = f"the function did not finish within its timeout of {spec.timeout_s:g} s"
            return await self._failed(request, slot, timing, container, Status.TIMEOUT, timeout)
        except ReplyTooLarge:
            too_large = replies.result_too_large()
            return await self._failed(
                request, slot, timing, container, Status.APPLICATION_ERROR, too_large
            )
        except ProxyError as exc:
            reason = await self._driver.ended(container.handle)
            log.info("container %s ended during a call (%s): %s", container.slot, reason, exc)
            ended = replies.container_ended(spec.memory_mb, reason)
            return await self._failed(
                request, slot, timing, container, Status.APPLICATION_ERROR, ended
            )
        finally:
            container.running -= 1
        usage = gauge.stop() if gauge is not None else None
        now = self._clock()
        duration_s = now - timing.run_start
        decision = self._keep_alive.decide(policy_key(spec), now)
        # With a pre-warm planned, this container goes now and a fresh one comes back later.
        hold = 0.0 if decision.prewarm_after_s is not None else decision.keep_alive_s
        if self.pool.released(slot, tenant, now, hold, duration_s):
            self._spawn(self._remove([slot]), name=f"retire-{slot}")
        elif decision.prewarm_after_s is not None and self._idle(slot):
            self._prewarms[spec.key] = Prewarm(
                spec, now + decision.prewarm_after_s, now + decision.keep_alive_s
            )
        self._freeze_if_idle(container)
        self._pulse(spec.key)
        logs = replies.bounded_logs(resp.body.get("logs"))
        result = resp.body.get("result")
        error = None if resp.ok else replies.function_error(resp.body, resp.status)
        if error is None:
            error = replies.oversized_result(resp.size, result)
        if error is None:
            return await self._finish(
                request, timing, container, Status.SUCCESS, result, None, logs, usage
            )
        return await self._finish(
            request, timing, container, Status.APPLICATION_ERROR, None, error, logs, usage
        )

    def _freeze_if_idle(self, container: Container) -> None:
        """Freeze a container no call is inside: what its calls left running stops."""
        if container.running == 0:
            cgroup = self._driver.call_meter(container.handle)
            if cgroup is not None:
                cgroup.freeze()

    async def _not_started(
        self, request: InvokeRequest, slot: str, timing: CallTiming, container: Container
    ) -> InvokeResult:
        """The call's container never became ready: throttle, or record whose failure."""
        failure, detail = container.init_failure, container.init_error or ""
        if failure is Failure.NO_CAPACITY:
            self.pool.abandoned(slot, request.function.tenant)
            await self._remove([slot])
            raise Throttled(f"no capacity: {detail}", 1.0)
        if failure is Failure.FUNCTION:
            error, status = f"init failed: {detail}", Status.APPLICATION_ERROR
        else:
            log.warning("activation %s: %s", request.activation_id, detail)
            error, status = replies.PLATFORM_START_FAILED, Status.PLATFORM_ERROR
        return await self._failed(request, slot, timing, container, status, error)

    async def _failed(
        self,
        request: InvokeRequest,
        slot: str,
        timing: CallTiming,
        container: Container,
        status: Status,
        error: str,
    ) -> InvokeResult:
        """The call did not complete normally in its container: drop the container, record."""
        self.pool.abandoned(slot, request.function.tenant)
        await self._remove([slot])
        return await self._finish(request, timing, container, status, None, error, [])

    # ---- helpers ----

    def _idle(self, slot: str) -> bool:
        found = self.pool.slots.get(slot)
        return found is not None and found.state is State.IDLE

    def _new_name(self) -> str:
        return f"nimbus-{self.instance_id[:8]}-{next(self._names)}-{uuid.uuid4().hex[:6]}"

    async def _placed_spec(
        self, name: str, runtime: str, memory_mb: int, spec: FunctionSpec | None = None
    ) -> ContainerSpec:
        """Place the container on a node (growing the pool if needed), then describe it."""
        cspec = self._container_spec(name, runtime, memory_mb, spec)
        if self.nodes is None:
            return cspec
        node = await self.nodes.place(name, memory_mb)
        if node is None:  # left for the cluster's scheduler (a Pending pod)
            return cspec
        return replace(
            cspec,
            node=node.id,
            cgroup_parent=self.nodes.cgroup_parent(node.id),
            # More CPU than its node has would make the engine refuse to start it.
            cpus=min(cspec.cpus, node.flavor.vcpu),
        )

    def largest_container_mb(self) -> int:
        """The most memory one container can ever get: the largest node, or this machine."""
        if self.nodes is not None and self.nodes.flavors:
            return max(f.memory_mb for f in self.nodes.flavors)
        return host_memory_mb()

    def _unplace(self, slot: str) -> None:
        if self.nodes is not None:
            self.nodes.free(slot)

    def _container_spec(
        self, name: str, runtime: str, memory_mb: int, spec: FunctionSpec | None = None
    ) -> ContainerSpec:
        return container_spec(
            name,
            runtime,
            memory_mb,
            spec,
            owner=self._config.owner,
            instance_id=self.instance_id,
            host_cpus=self._config.host_cpus,
            node=self._config.node,
            api_socket_dir=self._config.api_socket_dir,
        )

    def _pulse(self, key: tuple[str, str, int]) -> None:
        """Wake callers waiting for a container of `key`."""
        event = self._pulses.pop(key, None)
        if event is not None:
            event.set()

    async def _wait_for(self, key: tuple[str, str, int], seconds: float) -> None:
        event = self._pulses.setdefault(key, asyncio.Event())
        self.pool.waiting(key, +1)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):  # not wait_for: see dispatcher._sleep
                    await event.wait()
        finally:
            self.pool.waiting(key, -1)

    async def _remove(self, slots: list[str] | tuple[str, ...]) -> None:
        """Take containers out of the pool and destroy them."""
        await self._discard(self.pool.removing(slots))

    async def _discard(self, slots: list[Slot]) -> None:
        """Destroy containers the pool already marked for removal."""
        for slot in slots:
            container = self._containers.pop(slot.id, None)
            if container is not None:
                await self._destroy(container)
            self._unplace(slot.id)
            self.pool.removed(slot.id)
            if slot.key is not None:
                self._pulse(slot.key)

    async def _destroy(self, container: Container) -> None:
        if not container.handle.id:
            return
        self._client.forget(container.handle.address)
        try:
            await self._driver.destroy(container.handle)
        except DriverError as exc:
            log.warning("could not remove %s (the next start sweeps it): %s", container.slot, exc)

    async def _finish(
        self,
        request: InvokeRequest,
        timing: CallTiming,
        container: Container | None,
        status: Status,
        result: Any,
        error: str | None,
        logs: list[str],
        usage: ContainerStats | None = None,
    ) -> InvokeResult:
        spec = request.function
        node = container.handle.node if container is not None else None
        outcome = outcome_of(
            request, timing, self._clock(), node, status, result, error, logs, usage
        )
        if self._metrics is not None:
            self._metrics.observe(spec, outcome)
        return outcome
