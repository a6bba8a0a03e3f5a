"""Ballooning at run time: idle warm containers deflated, inflated again before a call.

The decisions are pure (`balloon.decide`, `balloon.before_call`, `overcommit.admit_call`);
this module measures, asks them and acts. It reads a container's working set and writes its
memory limit through the driver's call meter (the container's cgroup files, kept open: one
pwrite), or through the engine (`docker update`) where the files cannot be written (pods,
with no call meter, are measured and resized through their API: `pod_ballooning`), and
books what each container holds now on its node (`Node.deflated`), which is what lets the
node admit more idle containers than its memory holds at full size.

Which containers: function containers that are idle (state IDLE) and frozen between calls
(a frozen process allocates nothing, so a deflated limit cannot OOM-kill it). Stem cells are
not deflated: there are a few of them, kept to be taken at once, and specialising one would
pay an inflation (and possibly evictions) on the path meant to be the fastest. A container
with a call in it, or being started, is never deflated.

The promise to callers: a call runs only in a container at its full `memory_mb`, and only
once its node's resident memory (limits as they are now) has room for that: idle containers
are evicted first (lowest keep-alive value), and when even that is not enough the call goes
elsewhere (`before_call` answers False; the call path removes this container and decides
again: a cold start on another node, or a wait).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from invoker.containers.balloon import BalloonConfig, BalloonView, Deflate, Inflate, decide
from invoker.containers.cgroups import CallMeter, LimitWrite
from invoker.containers.pod_ballooning import PodBalloons, SizesPods
from invoker.containers.slots import Slot, SlotTable, State
from invoker.drivers.base import ContainerDriver
from invoker.metrics import InvokerMetrics
from invoker.nodes.model import Node
from invoker.nodes.node_pool import NodePool
from invoker.nodes.overcommit import Admit, NodeMemory, Resident, admit_call, place_cold
from invoker.nodes.placement import MEMORY_DIM, NodeState

log = logging.getLogger("nimbus.invoker")

RECENT = 4096  # inflation timings kept for the benchmark and the admin


class Balloons:
    """Deflates idle containers and inflates them before their next call."""

    def __init__(
        self,
        slots: SlotTable,
        driver: ContainerDriver,
        config: BalloonConfig,
        *,
        clock: Callable[[], float],
        evict: Callable[[Iterable[str]], Awaitable[None]],
        nodes: NodePool | None = None,
        metrics: InvokerMetrics | None = None,
    ) -> None:
        self._slots = slots
        self._driver = driver
        self.config = config
        self._clock = clock
        self._evict = evict
        self._nodes = nodes
        self._metrics = metrics
        self._limits: dict[str, int] = {}  # slot id -> its limit (MB) while deflated
        self._changing: dict[str, asyncio.Future[bool]] = {}  # limit changes awaiting I/O
        self._fixed: set[str] = set()  # containers whose limit cannot be changed here
        self.inflations_s: deque[float] = deque(maxlen=RECENT)
        """How long each warm-path inflation took (admission + the write), newest last."""
        self._pods: PodBalloons | None = None
        if isinstance(driver, SizesPods):
            self._pods = PodBalloons(
                driver,
                config,
                clock=clock,
                idle=self._idle,
                limit_of=self.limit_mb,
                room=self._idle_room,
                change=self._resize_pod,
            )

    # ---- views ----

    def deflated(self, slot_id: str) -> bool:
        """True when the container runs below its full memory (or a change is in flight)."""
        return slot_id in self._limits or slot_id in self._changing

    def limit_mb(self, slot: Slot) -> int:
        """The container's memory limit now, as booked."""
        return self._limits.get(slot.id, slot.memory_mb)

    def changing(self, slot_id: str) -> bool:
        """True while a limit change of the container waits on the engine."""
        return slot_id in self._changing

    def hold_calls(self, slot: Slot) -> Callable[[bool], None]:
        """Calls given the container wait (in `before_call`) from now until the returned
        function is called with whether the change landed: for a change of its memory made
        elsewhere (its function's new size, through the engine). Synchronous, so no call
        slips in between; the container is neither deflated nor evicted meanwhile."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._changing[slot.id] = future

        def done(ok: bool) -> None:
            if self._changing.get(slot.id) is future:
                del self._changing[slot.id]
            future.set_result(ok)

        return done

    def resized(self, slot: Slot, limit_mb: int) -> None:
        """The container's full size changed (`slot.memory_mb`, in place); its limit now is
        `limit_mb` (below the full size: it stays deflated)."""
        self._book(slot, limit_mb)

    # ---- deflating (the maintenance loop) ----

    async def deflate_idle(self) -> int:
        """Ask the policy about every idle container and resize those it says to; returns
        how many limits changed. Cgroup writes happen inline (microseconds); the engine
        fallback runs on the driver's threads, all at once. Pods are looked at in tasks
        of their own (a metrics read and a kubelet sync): not counted here."""
        if self._pods is not None:
            self._pods.start(s for s in self._slots.values() if self._idle(s))
        now = self._clock()
        changed = 0
        through_engine: list[tuple[Slot, int]] = []
        for slot in self._slots.values():
            meter = self._idle_meter(slot)
            if meter is None:
                continue
            limit = self.limit_mb(slot)
            view = BalloonView(slot.memory_mb, limit, meter.working_set_mb(), slot.last_used)
            decision = decide(view, now, self.config)
            if isinstance(decision, Inflate) and not self._idle_room(slot, decision.limit_mb):
                continue  # no room to give it back: only this idle container is at risk
            if not isinstance(decision, Deflate | Inflate):
                continue
            outcome = meter.set_memory_limit(decision.limit_mb)
            if outcome is LimitWrite.DONE:
                self._book(slot, decision.limit_mb)
                changed += 1
            elif outcome is LimitWrite.UNSUPPORTED:
                through_engine.append((slot, decision.limit_mb))
        results = await asyncio.gather(*(self._through_engine(s, mb) for s, mb in through_engine))
        changed += sum(results)
        if changed and self._metrics is not None:
            self._metrics.balloon_resizes.inc(changed)
        self._prune()
        return changed

    def _idle_meter(self, slot: Slot) -> CallMeter | None:
        """The meter of an idle, frozen function container whose limit may change now."""
        if not self._idle(slot) or slot.handle is None:
            return None
        meter = self._driver.call_meter(slot.handle)
        if meter is None or meter.freezer is None:
            return None  # not frozen between calls: an idle process might still allocate
        return meter

    def _idle(self, slot: Slot) -> bool:
        """An idle function container whose limit may change now."""
        return (
            slot.state is State.IDLE
            and slot.handle is not None
            and slot.id not in self._changing
            and slot.id not in self._fixed
        )

    async def _resize_pod(self, slot: Slot, limit_mb: int) -> bool:
        """An idle pod's limit changed through its API; one not done is tried again later
        (the kubelet may refuse it for the pod's usage now, not for good)."""
        ok = await self._through_engine(slot, limit_mb, fix=False)
        if ok and self._metrics is not None:
            self._metrics.balloon_resizes.inc()
        return ok

    async def settled(self) -> None:
        """Wait until the looks at idle pods under way have ended."""
        if self._pods is not None:
            await self._pods.settled()

    async def close(self) -> None:
        """Stop the looks at idle pods under way."""
        if self._pods is not None:
            await self._pods.close()

    def _idle_room(self, slot: Slot, limit_mb: int) -> bool:
        """May an idle container's limit grow to `limit_mb` without passing its node?"""
        node = self._node_of(slot)
        if node is None:
            return True
        return node.resident_mb + limit_mb - self.limit_mb(slot) <= node.flavor.memory_mb

    # ---- inflating (the call path) ----

    async def before_call(self, slot: Slot) -> bool:
        """Bring a container given a call back to its full memory before the call runs.

        False when its node cannot hold it at full size even after evicting idle
        containers: the call must go elsewhere. On the warm path with nothing to evict this
        is one cgroup write, with no await.
        """
        while (pending := self._changing.get(slot.id)) is not None:
            if not await asyncio.shield(pending) and slot.retired:
                return False  # its new size was refused: it is replaced, the call goes elsewhere
        limit = self._limits.get(slot.id)
        if limit is None:
            return True
        started = self._clock()
        evict = self._admit(slot)
        if evict is None:
            if self._metrics is not None:
                self._metrics.overcommit_elsewhere.inc()
            return False
        meter = self._driver.call_meter(slot.handle) if slot.handle is not None else None
        if evict:
            # Promised before any await, held once the evicted are gone: no other
            # admission or placement can count on this room meanwhile.
            self._reserve(slot, slot.memory_mb - limit)
        else:
            self._book(slot, slot.memory_mb)
            if meter is not None and meter.set_memory_limit(slot.memory_mb) is LimitWrite.DONE:
                self._inflated(started)
                return True
        future = asyncio.get_running_loop().create_future()
        self._changing[slot.id] = future
        ok = False
        try:
            if evict:
                if self._metrics is not None:
                    self._metrics.overcommit_evictions.inc(len(evict))
                await self._evict(evict)  # their memory is free once they are gone
            if meter is not None and meter.set_memory_limit(slot.memory_mb) is LimitWrite.DONE:
                ok = True
            elif slot.handle is not None:
                ok = await self._driver.set_memory_limit(slot.handle, slot.memory_mb)
        finally:
            del self._changing[slot.id]
            self._book(slot, slot.memory_mb if ok else limit)
            future.set_result(ok)
        if ok:
            self._inflated(started)
        return ok

    def _admit(self, slot: Slot) -> tuple[str, ...] | None:
        """The idle containers to evict so the slot's container fits its node at full size
        (None: it cannot, even then). Without a node pool there is nothing to overcommit."""
        node = self._node_of(slot)
        if node is None or self._nodes is None:
            return ()
        # The common case, without building the node's view: the room is free already.
        # (The books count every other container as `_memory_of` does, and an inflation
        # leaves the allocated sum, and so the cap, as it is.)
        growth = slot.memory_mb - self.limit_mb(slot)
        if node.resident_mb + node.reserved_mb + growth <= node.flavor.memory_mb:
            return ()
        answer = admit_call(self._memory_of(node, slot.id), slot.id, self._nodes.overcommit)
        return answer.evict if isinstance(answer, Admit) else None

    def cold_evictions(self, memory_mb: int) -> tuple[str, ...] | None:
        """Idle containers to evict so a new container of `memory_mb` fits some ready node,
        the cheapest in keep-alive value (None: no node can take it even so). Only on
        overcommitted pools: without overcommit a full node answers no, as it always did."""
        if self._nodes is None or self._nodes.overcommit.max_ratio <= 1.0:
            return None
        ready = [n for n in self._nodes.nodes.values() if n.state is NodeState.READY]
        placed = place_cold([self._memory_of(n) for n in ready], memory_mb, self._nodes.overcommit)
        return None if placed is None or not placed[1].evict else placed[1].evict

    def _memory_of(self, node: Node, subject: str | None = None) -> NodeMemory:
        """The node as overcommit sees it. Idle containers (and the `subject` being
        admitted) count at their limit now, as do those being removed (not evictable);
        every other one at its full size, busy."""
        residents = []
        for cid, demand in node.allocations.items():
            memory = int(demand[MEMORY_DIM])
            other = self._slots.get(cid)
            idle = (
                other is not None
                and other.state in (State.IDLE, State.PREWARM)
                and cid not in self._changing
            )
            if cid == subject or idle:
                keep = 0.0
                if other is not None:
                    keep = other.idle_until if other.idle_until is not None else other.last_used
                limit = node.deflated.get(cid, memory)
                residents.append(Resident(cid, memory, limit, keep_value=keep))
            elif other is None or other.state is State.REMOVING:
                limit = node.deflated.get(cid, memory)
                residents.append(Resident(cid, memory, limit, evictable=False))
            else:
                residents.append(Resident(cid, memory, memory, busy=True))
        return NodeMemory(node.id, node.flavor.memory_mb, tuple(residents))

    def _inflated(self, started: float) -> None:
        took = self._clock() - started
        self.inflations_s.append(took)
        if self._metrics is not None:
            self._metrics.balloon_inflate.observe(took)

    # ---- books ----

    async def _through_engine(self, slot: Slot, limit_mb: int, *, fix: bool = True) -> bool:
        """Resize an idle container through the engine; calls for it wait until done. One
        not done is not asked again (`fix`) where the engine cannot."""
        if slot.handle is None:
            return False
        future = asyncio.get_running_loop().create_future()
        self._changing[slot.id] = future
        ok = False
        try:
            ok = await self._driver.set_memory_limit(slot.handle, limit_mb)
        finally:
            del self._changing[slot.id]
            if ok:
                self._book(slot, limit_mb)
            elif fix:
                self._fixed.add(slot.id)  # this driver cannot: stop asking
            future.set_result(ok)
        return ok

    def _book(self, slot: Slot, limit_mb: int) -> None:
        """Record the container's limit now, here and on its node."""
        if self._slots.get(slot.id) is not slot:
            return  # gone meanwhile: its node forgot it too
        if limit_mb < slot.memory_mb:
            self._limits[slot.id] = limit_mb
        else:
            self._limits.pop(slot.id, None)
        node = self._node_of(slot)
        if node is not None and slot.id in node.allocations:
            node.set_limit(slot.id, limit_mb)

    def _reserve(self, slot: Slot, extra_mb: int) -> None:
        node = self._node_of(slot)
        if node is not None and slot.id in node.allocations:
            node.reserve(slot.id, extra_mb)

    def _node_of(self, slot: Slot) -> Node | None:
        if self._nodes is None or slot.node is None:
            return None
        return self._nodes.nodes.get(slot.node)

    def _prune(self) -> None:
        """Forget containers that are gone."""
        for gone in [s for s in (*self._limits, *self._fixed) if s not in self._slots]:
            self._limits.pop(gone, None)
            self._fixed.discard(gone)
        if self._pods is not None:
            self._pods.forget(self._slots)
