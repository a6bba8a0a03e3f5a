"""Containers' lives at run time: placed, started, loaded, frozen, removed.

The pool (`pool.py`) decides and books every container in the slot table; this module
carries its decisions out against the node pool, the driver and the runtime client, and
writes what it learns (the node, the handle, how loading went) into the same slot. Callers
waiting for a container of a function are woken here whenever one loads, frees up or goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import replace
from typing import Any

from invoker import replies
from invoker.api import FunctionSpec
from invoker.containers.model import (
    ContainerDefaults,
    Prewarm,
    container_spec,
    demand_of,
    function_env,
)
from invoker.containers.pool import Pool
from invoker.containers.slots import Failure, FunctionKey, Slot, State
from invoker.drivers.base import ContainerDriver, ContainerHandle, ContainerSpec, DriverError
from invoker.nodes.model import NoCapacity, Node
from invoker.nodes.node_pool import NodePool
from invoker.runtime_client import ProxyError, RuntimeClient
from invoker.store.base import Store

log = logging.getLogger("nimbus.invoker")

INIT_TIMEOUT_S = 60.0
PLACE_ROUNDS = 3  # evict-then-place attempts for one container on an overcommitted pool


class SlotGone(DriverError):
    """The slot was removed (its caller gave up) while its container was being started."""


class ContainerLifecycle:
    """Starts, loads and removes the containers the pool books; owns the tasks doing so."""

    def __init__(
        self,
        pool: Pool,
        driver: ContainerDriver,
        client: RuntimeClient,
        store: Store,
        defaults: ContainerDefaults,
        *,
        clock: Callable[[], float],
        nodes: NodePool | None = None,
        make_room: Callable[[int], tuple[str, ...] | None] | None = None,
    ) -> None:
        self._pool = pool
        self._slots = pool.slots
        self._driver = driver
        self._client = client
        self._store = store
        self._defaults = defaults
        self._clock = clock
        self._nodes = nodes
        self._make_room = make_room  # idle containers to evict for a new one (overcommit)
        self._prewarms: dict[FunctionKey, Prewarm] = {}
        self._pulses: dict[FunctionKey, asyncio.Event] = {}
        self._names = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._targets: dict[str, str] = {}  # slot id -> the node it must go to (a migration)

    async def close(self) -> None:
        """Stop the work in flight and remove every container."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        everything = self._slots.clear()
        await asyncio.gather(*(self._destroy(s) for s in everything), return_exceptions=True)

    # ---- starting ----

    def start_for_call(self, spec: FunctionSpec, evict: Iterable[str]) -> Slot:
        """A cold start for a call of `spec`, evicting idle containers first; the slot is
        booked (and reserved for the call) at once, the container starts in the background."""
        # Book-keeping first, all before any await, so no other call sees stale memory.
        evicted = self._pool.removing(evict)
        slot_id = self._new_name()
        slot = self._pool.starting(
            slot_id, demand_of(spec), spec.runtime, spec.memory_mb, self._clock()
        )
        slot.spec = spec
        if evicted:
            self._spawn(self._discard(evicted), f"evict-for-{slot_id}")
        self._spawn(self._start_for(slot), f"start-{slot_id}")
        return slot

    def specialise(self, slot_id: str, spec: FunctionSpec) -> Slot:
        """Load `spec` into the stem cell the pool gave a call, in the background."""
        slot = self._slots[slot_id]
        slot.spec = spec
        slot.ready.clear()
        self._spawn(self._specialise(slot), f"init-{slot_id}")
        return slot

    def plan_prewarm(self, prewarm: Prewarm) -> None:
        """Start a container of the function at `prewarm.at` (keep-alive asked for it)."""
        self._prewarms[prewarm.spec.key] = prewarm

    def cancel_prewarm(self, key: FunctionKey) -> None:
        """A call came first: it brings its own container."""
        self._prewarms.pop(key, None)

    def start_due_prewarms(self) -> int:
        """Start the pre-warms that are due; returns how many came due."""
        now = self._clock()
        due = [p for p in self._prewarms.values() if p.at <= now]
        for prewarm in due:
            del self._prewarms[prewarm.spec.key]
            if now >= prewarm.until or self._slots.of(prewarm.spec.key):
                continue  # too late, or a call already brought a container
            slot = self._pool.starting_for(self._new_name(), demand_of(prewarm.spec), now)
            slot.spec = prewarm.spec
            self._spawn(self._start_for(slot, idle_until=prewarm.until), f"prewarm-{slot.id}")
        return len(due)

    async def refill_stems(self, wanted: dict[tuple[str, int], int]) -> None:
        """Start stem cells until each (runtime, memory) has its wanted count."""
        for runtime, memory_mb in self._pool.stem_deficit(wanted):
            slot = self._pool.starting(self._new_name(), None, runtime, memory_mb, self._clock())
            try:
                await self._create(slot)
            except (DriverError, NoCapacity, ProxyError) as exc:
                await self.remove([slot.id])
                log.warning("could not start a stem cell: %s", exc)
                return
            slot.ready.set()
            self._pool.prewarmed(slot.id)

    async def start_replacement(self, spec: FunctionSpec, node_id: str, idle_until: float) -> Slot:
        """A container of `spec` on `node_id`, started and loaded, that no call can take
        until `Pool.adopt` gives it the function (a migration's step 1). A ready stem cell
        on that node is specialised when the function may use one; otherwise a container
        is started there. Raises (NoCapacity, DriverError, ...) with nothing left behind."""
        now = self._clock()
        demand = demand_of(spec)
        stems = self._slots.stems(spec.runtime, spec.memory_mb) if demand.stem_ok else []
        stem = next((s for s in stems if s.node == node_id), None)
        if stem is not None:
            stem.state = State.INITIALIZING  # no call may specialise it meanwhile
            slot = stem
        else:
            slot = self._pool.starting(self._new_name(), None, spec.runtime, spec.memory_mb, now)
            slot.spec = spec  # started as the function's container (its labels, its image)
            self._targets[slot.id] = node_id
            try:
                await self._create(slot)
            except BaseException:
                await self.remove([slot.id])
                raise
            finally:
                self._targets.pop(slot.id, None)
        slot.spec = spec
        slot.ready.clear()
        await self._init(slot, now, idle_until)
        if slot.init_error is not None or self._slots.get(slot.id) is not slot:
            await self.remove([slot.id])
            raise DriverError(slot.init_error or "the replacement was removed while it loaded")
        return slot

    async def _create(self, slot: Slot) -> ContainerHandle:
        """Place the slot's container, start it and trust its proxy; the handle is the slot's.

        SlotGone when the slot was removed while it started (a caller's start timeout):
        the container is destroyed and its node share given back, so nothing leaks.
        """
        cspec = await self._placed_spec(slot)
        if self._slots.get(slot.id) is slot:
            slot.handle = await self._driver.create(cspec)
        handle = slot.handle
        if self._slots.get(slot.id) is not slot or handle is None:
            await self._undo_start(slot)
            raise SlotGone(f"container {slot.id} was removed while it started")
        self._client.trust(handle.address, handle.token)
        return handle

    async def _undo_start(self, slot: Slot) -> None:
        """Remove the slot's container and give its node share back (it never served)."""
        await self._destroy(slot)
        slot.handle = None
        self._unplace(slot)

    async def _start_for(self, slot: Slot, idle_until: float | None = None) -> None:
        """Create a container for its function, /init it, and open it to its reserved calls."""
        spec = slot.spec
        assert spec is not None
        started = self._clock()
        try:
            await self._create(slot)
        except Exception as exc:  # whatever went wrong, the calls waiting must be answered
            await self._undo_start(slot)  # started, then refused: remove it now
            if isinstance(exc, NoCapacity):
                slot.failed(Failure.NO_CAPACITY, str(exc))
            else:
                slot.failed(Failure.PLATFORM, f"could not start a container: {exc}")
            log.warning("no container for %s/%s: %s", spec.tenant, spec.name, exc)
            slot.ready.set()
            self.wake(spec.key)
            if idle_until is not None:  # a pre-warm nobody waits for: clean up now
                await self.remove([slot.id])
            return
        await self._init(slot, started, idle_until)
        if idle_until is not None and slot.init_error is not None:
            await self.remove([slot.id])

    async def _specialise(self, slot: Slot) -> None:
        await self._init(slot, started=self._clock())

    async def _init(self, slot: Slot, started: float, idle_until: float | None = None) -> None:
        """/init the slot's container with its function; open it to its calls, or say why not."""
        spec = slot.spec
        assert spec is not None
        try:
            if slot.handle is None:
                raise DriverError("the container was never started")
            code = await self._store.get_code(spec.code_sha256)
            if code is None:
                raise DriverError(f"code blob {spec.code_sha256} is missing from the store")
            env = function_env(spec)
            slot.init_bytes = len(code)
            resp = await self._client.init(
                slot.handle.address,
                code=code,  # raw: the client encodes it, off the event loop when large
                binary=spec.code_kind == "zip",
                main=spec.handler,
                env=env,
                timeout=INIT_TIMEOUT_S,
            )
            if not resp.ok:
                slot.failed(Failure.FUNCTION, replies.function_error(resp.body, resp.status))
        except Exception as exc:  # never leave reserved calls waiting on `ready`
            slot.failed(Failure.PLATFORM, f"/init failed: {exc}")
            log.warning("loading %s/%s failed: %s", spec.tenant, spec.name, exc)
        slot.init_ms = (self._clock() - started) * 1000
        if self._slots.get(slot.id) is not slot:  # removed while it loaded: nobody waits
            await self._undo_start(slot)
            slot.ready.set()
            self.wake(spec.key)
            return
        if slot.init_error is None:
            self._pool.initialized(slot.id, slot.init_ms / 1000, idle_until)
            self.freeze_if_idle(slot)
        slot.ready.set()
        self.wake(spec.key)

    async def _placed_spec(self, slot: Slot) -> ContainerSpec:
        """Place the container on a node (growing the pool if needed), then describe it."""
        cspec = container_spec(slot.id, slot.runtime, slot.memory_mb, slot.spec, self._defaults)
        if self._nodes is None:
            return cspec
        node = await self._place(slot)
        if node is None:  # left for the cluster's scheduler (a Pending pod)
            return cspec
        slot.node = node.id
        return replace(
            cspec,
            node=node.id,
            cgroup_parent=self._nodes.cgroup_parent(node.id),
            # More CPU than its node has would make the engine refuse to start it.
            cpus=min(cspec.cpus, node.flavor.vcpu),
        )

    async def _place(self, slot: Slot) -> Node | None:
        """Place the slot on a node; on an overcommitted pool, evict idle containers first
        when no node has room (a few rounds: concurrent starts may take the room freed)."""
        assert self._nodes is not None
        target = self._targets.get(slot.id)
        if target is not None:
            return self._nodes.place_on(slot.id, slot.memory_mb, target)
        for _ in range(PLACE_ROUNDS):
            try:
                return await self._nodes.place(slot.id, slot.memory_mb)
            except NoCapacity:
                evict = self._make_room(slot.memory_mb) if self._make_room is not None else None
                if not evict:
                    raise
            await self.remove(evict)  # their memory is free once they are gone
        return await self._nodes.place(slot.id, slot.memory_mb)

    # ---- between calls ----

    def freeze_if_idle(self, slot: Slot) -> None:
        """Freeze a container no call is inside: what its calls left running stops."""
        if slot.running == 0 and slot.handle is not None:
            cgroup = self._driver.call_meter(slot.handle)
            if cgroup is not None:
                cgroup.freeze()

    def wake(self, key: FunctionKey) -> None:
        """Wake callers waiting for a container of `key`."""
        event = self._pulses.pop(key, None)
        if event is not None:
            event.set()

    async def wait_for(self, key: FunctionKey, seconds: float) -> None:
        """Wait up to `seconds` for a container of `key` to load, free up or go."""
        self._pool.waiting(key, +1)
        try:
            await self.pulse(key, seconds)
        finally:
            self._pool.waiting(key, -1)

    async def pulse(self, key: FunctionKey, seconds: float) -> None:
        """Wait up to `seconds` for the next change to `key`'s containers, as an observer
        (not a caller: the pool's wait estimate does not count it)."""
        event = self._pulses.setdefault(key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: see dispatcher._sleep
                await event.wait()

    # ---- removing ----

    async def remove(self, slot_ids: Iterable[str]) -> None:
        """Take containers out of the pool and destroy them."""
        await self._discard(self._pool.removing(slot_ids))

    def remove_soon(self, slot_id: str) -> None:
        """Remove a container in the background (its last call has just ended)."""
        self._spawn(self.remove([slot_id]), f"retire-{slot_id}")

    async def _discard(self, slots: list[Slot]) -> None:
        """Destroy containers the pool already marked for removal."""
        for slot in slots:
            await self._destroy(slot)
            self._unplace(slot)
            self._pool.removed(slot.id)
            if slot.key is not None:
                self.wake(slot.key)

    async def _destroy(self, slot: Slot) -> None:
        handle = slot.handle
        if handle is None:
            return
        self._client.forget(handle.address)
        try:
            await self._driver.destroy(handle)
        except DriverError as exc:
            log.warning("could not remove %s (the next start sweeps it): %s", slot.id, exc)

    def _unplace(self, slot: Slot) -> None:
        """Give the container's share of its node back."""
        if self._nodes is not None and slot.node is not None:
            self._nodes.free(slot.id, slot.node)
        slot.node = None

    # ---- helpers ----

    def _new_name(self) -> str:
        prefix = self._defaults.instance_id[:8]
        return f"nimbus-{prefix}-{next(self._names)}-{uuid.uuid4().hex[:6]}"

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
