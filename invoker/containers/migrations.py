"""Live migration of warm containers at run time: make-before-break, stateless, measured.

The policy is pure (`invoker.nodes.migration`: where each container goes, a drain's plan,
the record); this module runs a migration's four steps against the pool and the lifecycle:

1. start the replacement on the target (a stem cell there, or a container started there)
   and load the function into it, while no call can take it yet;
2. route: in one step with no await, the replacement takes the function's calls and the
   source is retired (no new calls), so there is no moment without a container to serve;
3. calls already in the source finish there;
4. the source is removed (its node share given back).

A replacement that cannot start leaves the source as it was (the migration is recorded as
failed). Each migration's measured cost goes into a bounded ring (`records`, for
`GET /v1/migrations`) and into /metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from invoker.containers.lifecycle import ContainerLifecycle
from invoker.containers.model import demand_of
from invoker.containers.pool import Pool
from invoker.containers.slots import Slot, State
from invoker.drivers.base import ContainerDriver, DriverError
from invoker.metrics import InvokerMetrics
from invoker.nodes.migration import (
    MigrationRecord,
    MigrationState,
    Movable,
    MoveCost,
    NodeLoad,
    choose_target,
    plan_drain,
)
from invoker.nodes.model import NoCapacity, demand_for
from invoker.nodes.node_pool import NodePool
from invoker.nodes.placement import NodeState, Vector

log = logging.getLogger("nimbus.invoker")

RING = 512  # migration records kept in memory
POLL_S = 0.05  # the longest the wait for the source's in-flight calls sleeps unwoken


class NotMovable(Exception):
    """The container cannot be migrated (unknown, not a loaded function, already moving)."""


class Migrations:
    """Runs migrations of warm containers between nodes and remembers what they cost."""

    def __init__(
        self,
        pool: Pool,
        lifecycle: ContainerLifecycle,
        driver: ContainerDriver,
        nodes: NodePool,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        metrics: InvokerMetrics | None = None,
    ) -> None:
        self._pool = pool
        self._slots = pool.slots
        self._life = lifecycle
        self._driver = driver
        self._nodes = nodes
        self._clock = clock
        self._wall = wall
        self._metrics = metrics
        self._records: OrderedDict[str, MigrationRecord] = OrderedDict()
        self._moving: dict[str, str] = {}  # source slot id -> migration id
        self._arrived: dict[str, tuple[str, float]] = {}  # replacement -> (from node, when)
        self._failed: set[str] = set()  # sources whose migration failed: not tried again
        self._ids = itertools.count(1)
        self._done: dict[str, asyncio.Event] = {}  # migration id -> set when it ends
        self._cpu_seen: dict[str, tuple[float, float]] = {}  # slot -> (when, CPU seconds)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- views ----

    def records(self) -> list[MigrationRecord]:
        """The migrations remembered (the latest `RING`), oldest first."""
        return list(self._records.values())

    def moving(self, slot_id: str) -> bool:
        """True while the container is the source of a migration under way."""
        return slot_id in self._moving

    def busy_nodes(self) -> set[str]:
        """Nodes a migration under way moves from or to."""
        out = set()
        for migration_id in self._moving.values():
            record = self._records.get(migration_id)
            if record is not None:
                out |= {record.source, record.target}
        return out

    def movable(self, slot: Slot, load: Vector | None = None) -> Movable | None:
        """The container as the policies see it (None: not a loaded function on a node)."""
        if slot.spec is None or slot.node is None or slot.state not in (State.IDLE, State.BUSY):
            return None
        demand = demand_for(slot.memory_mb)
        came_from, moved_at = self._arrived.get(slot.id, (None, None))
        return Movable(
            slot.id,
            slot.node,
            demand,
            load if load is not None else demand,
            image=slot.runtime,
            init_s=max(slot.init_ms / 1000, 0.001),
            in_flight=slot.in_flight,
            movable=not slot.retired and slot.id not in self._moving,
            came_from=came_from,
            moved_at=moved_at,
        )

    def loads(self, measured: dict[str, Vector] | None = None) -> list[NodeLoad]:
        """Every node as the policies see it: memory as the limits hold it now (deflated
        idle containers at their limit), load as measured (else as allocated), and the room
        the overcommit cap leaves for full limits, which placement also checks."""
        out = []
        ratio = self._nodes.overcommit.max_ratio
        for node in self._nodes.nodes.values():
            allocated = node.resident_view().allocated
            load = (measured or {}).get(node.id, allocated)
            images = frozenset(
                s.runtime for s in self._slots.values() if s.node == node.id and s.spec
            )
            room = node.flavor.memory_mb * ratio - node.allocated_memory_mb
            out.append(NodeLoad(node.id, node.capacity, allocated, load, node.state, images, room))
        return out

    # ---- starting migrations ----

    def start(self, slot_id: str, target: str | None, reason: str) -> MigrationRecord:
        """Begin moving one container (to `target`, else where policy says); returns its
        record at once, the steps run in the background. NotMovable; NoCapacity when no
        node can take it (or `target` cannot)."""
        slot = self._slots.get(slot_id)
        movable = self.movable(slot) if slot is not None else None
        if slot is None or movable is None or not movable.movable:
            raise NotMovable(f"container {slot_id} is not a warm function container to move")
        chosen = self._target(movable, target)
        return self._begin(slot, chosen, reason)

    def _target(self, movable: Movable, target: str | None) -> str:
        if target is not None:
            node = self._nodes.nodes.get(target)
            if node is None or node.state is not NodeState.READY or target == movable.node:
                raise NoCapacity(f"node {target} is not another ready node")
            return target
        found = choose_target(movable, self.loads(), self._nodes.limits)
        if found is None:
            raise NoCapacity(f"no other node has room for container {movable.id}")
        return found.id

    async def drain(self, node_id: str, reason: str) -> list[MigrationRecord]:
        """Move every warm function container off a draining node (each to the least loaded
        node that fits); stem cells, retired containers and what fits nowhere are retired
        instead (idle ones removed now, busy ones when their calls end)."""
        here = [s for s in self._slots.values() if s.node == node_id]
        candidates = [
            m
            for s in here
            if s.id not in self._moving
            and s.id not in self._failed
            and (m := self.movable(s)) is not None
            and m.movable
        ]
        plan = plan_drain(node_id, candidates, self.loads(), self._nodes.limits)
        started = [self._begin(self._slots[m.container], m.target, reason) for m in plan.moves]
        moving = {m.container for m in plan.moves} | set(self._moving)
        rest = [s.id for s in here if s.id not in moving]
        await self._life.remove(self._pool.retire_ids(rest))
        return started

    def _begin(self, slot: Slot, target: str, reason: str) -> MigrationRecord:
        spec = slot.spec
        assert spec is not None and slot.node is not None
        record = MigrationRecord(
            id=f"mig-{next(self._ids)}",
            function=f"{spec.tenant}/{spec.name}",
            container=slot.id,
            source=slot.node,
            target=target,
            reason=reason,
            started_at=self._wall(),
        )
        self._keep(record)
        self._moving[slot.id] = record.id
        self._spawn(self._run(record, slot), f"migrate-{slot.id}")
        return record

    async def migrate(self, slot_id: str, target: str | None, reason: str) -> MigrationRecord:
        """Move one container and wait until its source is gone; the final record."""
        record = self.start(slot_id, target, reason)
        done = self._done[record.id] = asyncio.Event()
        await done.wait()
        return self._records[record.id]

    # ---- the steps ----

    async def _run(self, record: MigrationRecord, source: Slot) -> None:
        spec = source.spec
        assert spec is not None
        t0 = self._clock()
        cpu_source0 = await self._cpu(source)
        idle_until = source.idle_until if source.idle_until is not None else t0 + 60.0
        try:
            replacement = await self._life.start_replacement(spec, record.target, idle_until)
        except Exception as exc:  # the source serves on as if nothing happened
            self._failed.add(source.id)
            self._finish(record, source, MigrationState.FAILED, MoveCost(), str(exc))
            log.warning("migrating %s to %s failed: %s", source.id, record.target, exc)
            return
        init_s = self._clock() - t0
        target_cpu = await self._cpu(replacement)  # what starting and loading it took
        # Route: no await from here to the source's retirement.
        serving = self._slots.get(source.id) is source and source.state is not State.REMOVING
        self._pool.adopt(replacement.id, demand_of(spec))
        self._arrived[replacement.id] = (record.source, t0)
        source.retired = True
        routed = self._clock()
        downtime = 0.0 if serving else routed - t0  # the source went before its replacement
        self._life.wake(spec.key)
        while self._slots.get(source.id) is source and (source.in_flight or source.reserved):
            await self._life.pulse(spec.key, POLL_S)  # woken as each call ends
        cpu_source = await self._cpu_delta(source, cpu_source0)
        await self._life.remove([source.id])
        cost = MoveCost(
            downtime_s=downtime,
            init_s=init_s,
            cpu_source_s=cpu_source,
            cpu_target_s=target_cpu or 0.0,
            bytes_moved=replacement.init_bytes,
        )
        record = replace(record, replacement=replacement.id)
        self._finish(record, source, MigrationState.DONE, cost, None)

    def _finish(
        self,
        record: MigrationRecord,
        source: Slot,
        state: MigrationState,
        cost: MoveCost,
        error: str | None,
    ) -> None:
        done = replace(record, finished_at=self._wall(), state=state, cost=cost, error=error)
        self._keep(done)
        self._moving.pop(source.id, None)
        self._arrived.pop(source.id, None)
        waiter = self._done.pop(record.id, None)
        if waiter is not None:
            waiter.set()
        if self._metrics is not None:
            self._metrics.migrated(done)

    async def _cpu(self, slot: Slot) -> float | None:
        """The container's CPU seconds so far, from its cgroup (None where unknown)."""
        if slot.handle is None:
            return None
        try:
            return (await self._driver.stats(slot.handle)).cpu_seconds
        except DriverError:
            return None

    async def _cpu_delta(self, slot: Slot, before: float | None) -> float:
        after = await self._cpu(slot)
        return 0.0 if after is None or before is None else max(0.0, after - before)

    async def container_loads(self) -> dict[str, Vector]:
        """Each loaded container's measured (vCPUs busy since the last reading, memory MB
        booked), from its cgroup's CPU counter; containers read once so far are left out
        (their booked share stands in)."""
        now = self._clock()
        out: dict[str, Vector] = {}
        seen: dict[str, tuple[float, float]] = {}
        for slot in self._slots.loaded():
            cpu = await self._cpu(slot)
            if cpu is None:
                continue
            seen[slot.id] = (now, cpu)
            last = self._cpu_seen.get(slot.id)
            if last is not None and now > last[0]:
                busy = max(0.0, cpu - last[1]) / (now - last[0])
                out[slot.id] = (busy, float(slot.memory_mb))
        self._cpu_seen = seen
        return out

    def _keep(self, record: MigrationRecord) -> None:
        self._records[record.id] = record
        self._records.move_to_end(record.id)
        while len(self._records) > RING:
            oldest = next(iter(self._records))
            if self._records[oldest].state is MigrationState.RUNNING:
                break  # a running one stays until it ends
            del self._records[oldest]
        for gone in [s for s in self._failed if s not in self._slots]:
            self._failed.discard(gone)
        for gone in [s for s in self._arrived if s not in self._slots]:
            del self._arrived[gone]

    # ---- tasks ----

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop migrations under way (the lifecycle removes their containers)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
