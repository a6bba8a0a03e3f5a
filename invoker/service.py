"""The invoker: async glue between the pool's decisions, a driver, the runtime client and the store.

Data flows one way through `invoke`: request -> the call path (`call_path.py`: pool
decision, container, /run, result) -> activation + usage record in the store -> caller.
Every container is one slot in one table (`containers/slots.py`) that the pool decides on
and the lifecycle (`containers/lifecycle.py`) starts, loads and removes. Background work
(reaping idle containers, deflating them (ballooning), pre-warms, stem cells, consolidating
nodes, saving what keep-alive learned) runs in a loop the invoker owns and cancels on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from invoker.api import FunctionSpec, InvokeRequest, InvokeResult
from invoker.call_path import CallPath
from invoker.containers.balloon import BalloonConfig
from invoker.containers.ballooning import Balloons
from invoker.containers.keepalive import FixedTTL, KeepAlivePolicy
from invoker.containers.keepalive_memory import KeepAliveMemory
from invoker.containers.lifecycle import ContainerLifecycle
from invoker.containers.migrations import Migrations, NotMovable
from invoker.containers.model import ContainerDefaults
from invoker.containers.pool import Pool, PoolLimits
from invoker.containers.resize import Resizer
from invoker.containers.slots import Slot, SlotTable
from invoker.drivers.base import ContainerDriver
from invoker.metrics import InvokerMetrics
from invoker.nodes.heat import HotSpots
from invoker.nodes.hotspot import HotSpotConfig, plan_mitigation
from invoker.nodes.migration import MigrationRecord
from invoker.nodes.model import NoCapacity
from invoker.nodes.node_pool import NodePool
from invoker.nodes.placement import NodeState
from invoker.providers.local import host_memory_mb
from invoker.recorder import Recorder, StoreRecorder
from invoker.runtime_client import RuntimeClient
from invoker.store.base import Store

log = logging.getLogger("nimbus.invoker")


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
    hot_spots: HotSpotConfig | None = None
    """Move containers off nodes that stay hot (None: hot spots are only avoided at
    placement). Needs a node pool."""
    balloon: BalloonConfig | None = None
    """Deflate idle warm containers to their working set (None: containers keep their full
    memory). Where the driver has no call meter (process, Kubernetes, remote engines)
    nothing is deflated either way."""


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
        self._config = config
        self._clock = clock
        self.instance_id = uuid.uuid4().hex
        self.nodes = nodes
        self.slots = SlotTable()
        self.pool = Pool(config.limits, self.slots)
        self._memory = KeepAliveMemory(
            keep_alive or FixedTTL(600.0),
            store,
            clock=clock,
            wall=wall,
            save_every_s=config.keep_alive_save_s,
        )
        defaults = ContainerDefaults(
            owner=config.owner,
            instance_id=self.instance_id,
            host_cpus=config.host_cpus,
            node=config.node,
            api_socket_dir=config.api_socket_dir,
        )
        self.balloons: Balloons | None = None
        if config.balloon is not None:
            self.balloons = Balloons(
                self.slots,
                driver,
                config.balloon,
                clock=clock,
                evict=lambda ids: self._life.remove(ids),  # the lifecycle comes next
                nodes=nodes,
                metrics=metrics,
            )
        self._life = ContainerLifecycle(
            self.pool,
            driver,
            client,
            store,
            defaults,
            clock=clock,
            nodes=nodes,
            make_room=self.balloons.cold_evictions if self.balloons is not None else None,
        )
        self._calls = CallPath(
            self.pool,
            self._life,
            driver,
            client,
            self._memory,
            clock=clock,
            wall=wall,
            token_for=token_for,
            metrics=metrics,
            balloons=self.balloons,
        )
        self._resizer = Resizer(self.pool, driver, nodes=nodes, balloons=self.balloons)
        self.migrations: Migrations | None = None
        self.hot_spots: HotSpots | None = None
        if nodes is not None:
            self.migrations = Migrations(
                self.pool, self._life, driver, nodes, clock=clock, wall=wall, metrics=metrics
            )
            if config.hot_spots is not None:
                self.hot_spots = HotSpots(nodes, config.hot_spots, clock=clock)
        self._background: asyncio.Task[None] | None = None
        self._recorder = StoreRecorder(store, step_ms=config.billing_step_ms)

    @property
    def driver(self) -> ContainerDriver:
        return self._driver

    @property
    def keep_alive(self) -> KeepAlivePolicy:
        """The keep-alive policy and what it has learned."""
        return self._memory.policy

    # ---- lifecycle ----

    async def start(self) -> int:
        """Remove containers a previous run left behind, then start the background loop."""
        removed = await self._driver.remove_orphans(self._config.owner, self.instance_id)
        await self._memory.restore()
        self._background = asyncio.create_task(self._maintain(), name="nimbus-pool-maintenance")
        return removed

    async def close(self) -> None:
        """Stop background work and remove every container this invoker started."""
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        if self.migrations is not None:
            await self.migrations.close()
        await self._resizer.close()
        if self.balloons is not None:
            await self.balloons.close()
        await self._life.close()
        try:
            await self.save_keep_alive()
        except Exception:  # stopping must not fail over it; at most a minute is lost
            log.exception("could not save what keep-alive learned")

    async def save_keep_alive(self) -> int:
        """Store the keep-alive histories that changed since the last save; returns how many."""
        return await self._memory.save()

    def set_tenant_caps(self, caps: Mapping[str, int]) -> None:
        """Per-tenant limits on calls in flight, as an admin set them (others: default)."""
        self.pool.tenant_caps = dict(caps)

    def forget(self, tenant: str, name: str) -> None:
        """The function is deleted: drop what keep-alive learned of it."""
        self._memory.forget(tenant, name)

    # ---- maintenance ----

    async def _maintain(self) -> None:
        """Reap expired idle containers, deflate idle ones, keep stem cells stocked, forever."""
        while True:
            try:
                await self.reap()
                if self.balloons is not None:
                    await self.balloons.deflate_idle()
                await self.run_prewarms()
                await self.refill_stems()
                await self.consolidate()
                await self.mitigate_hot_spots()
                if self._memory.save_due():
                    await self.save_keep_alive()
            except Exception:  # the loop must outlive any one failure
                log.exception("pool maintenance failed")
            await asyncio.sleep(self._config.reap_interval_s)

    async def reap(self) -> int:
        """Remove idle containers whose keep-alive ran out; returns how many."""
        expired = self.pool.expired(self._clock())
        await self._life.remove(expired)
        return len(expired)

    async def run_prewarms(self) -> int:
        """Start the function containers whose keep-alive decision asked for a pre-warm."""
        return self._life.start_due_prewarms()

    async def refill_stems(self) -> None:
        """Start stem cells until each configured (runtime, memory) has its count."""
        await self._life.refill_stems({(rt, mem): n for rt, mem, n in self._config.stem_cells})

    async def consolidate(self) -> list[str]:
        """Drain under-used nodes (their warm containers migrate to other nodes, the rest
        go once idle), release empty ones; returns the nodes released."""
        if self.nodes is None:
            return []
        needed = await self.nodes.nodes_needed()
        for node_id in self.nodes.plan_consolidation(needed):
            self.nodes.drain(node_id)
            log.info("draining node %s to consolidate", node_id)
        draining = [n.id for n in self.nodes.nodes.values() if n.state is NodeState.DRAINING]
        for node_id in draining:
            await self._empty(node_id)
        return await self.nodes.release_drained()

    async def _empty(self, node_id: str) -> list[MigrationRecord]:
        """Move a draining node's warm containers elsewhere (make-before-break); what
        cannot move is retired (idle ones now, busy ones once their calls end)."""
        assert self.migrations is not None  # there is one wherever there are nodes
        return await self.migrations.drain(node_id, "drain")

    async def drain_node(self, node_id: str) -> list[MigrationRecord]:
        """Operator: stop placing on a node and migrate its warm containers away; it is
        released once empty. Returns the migrations started."""
        if self.nodes is None:
            raise KeyError(node_id)
        self.nodes.drain(node_id)
        started = await self._empty(node_id)
        await self.nodes.release_drained()
        return started

    async def mitigate_hot_spots(self) -> list[MigrationRecord]:
        """Sample each node's pressure; from a node that stayed hot, migrate the containers
        that load it most to nodes that stay cool with them. Returns the migrations started."""
        if self.hot_spots is None or self.migrations is None or self.nodes is None:
            return []
        self.hot_spots.sample()
        loads = await self.migrations.container_loads()
        hot = self.hot_spots.hot() - self.migrations.busy_nodes()
        if not hot:
            return []
        movables = [
            m for s in self.slots.values() if (m := self.migrations.movable(s, loads.get(s.id)))
        ]
        plans = plan_mitigation(
            hot,
            self.migrations.loads(self.hot_spots.load),
            movables,
            self._clock(),
            self.hot_spots.config,
            self.nodes.limits,
        )
        started = []
        for plan in plans:
            for move in plan.moves:
                try:
                    started.append(self.migrations.start(move.container, move.target, "hot-spot"))
                except (NotMovable, NoCapacity) as exc:
                    log.info("hot spot %s: %s", plan.node, exc)
            if plan.moves:
                self.hot_spots.acted(plan.node)
                log.info("hot spot %s: moving %d containers", plan.node, len(plan.moves))
        return started

    # ---- views ----

    def container_states(self) -> dict[str, int]:
        """Containers by state (prewarm, initializing, idle, busy, removing)."""
        return self.slots.counts()

    def containers(self, tenant: str | None = None, name: str | None = None) -> list[Slot]:
        """Live function containers, optionally of one tenant's function."""
        return self.slots.loaded(tenant, name)

    def largest_container_mb(self) -> int:
        """The most memory one container can ever get: the largest node, or this machine."""
        if self.nodes is not None and self.nodes.flavors:
            return max(f.memory_mb for f in self.nodes.flavors)
        return host_memory_mb()

    async def retire(self, tenant: str, name: str) -> None:
        """Remove a function's containers: idle ones now, busy ones when their calls end."""
        await self._life.remove(self.pool.retire(tenant, name))

    async def redeployed(self, old: FunctionSpec, new: FunctionSpec) -> list[str]:
        """A new version of a function replaced `old`: when only its memory (or timeout,
        params) changed, idle warm containers are resized in place and serve `new`; the
        rest are retired as on any deploy. Returns the containers carried over."""
        kept = self._resizer.carry_over(old, new)
        await self._life.remove(self.pool.retire(new.tenant, new.name, keep=kept))
        return kept

    # ---- the call path ----

    async def invoke(
        self, request: InvokeRequest, recorder: Recorder | None = None
    ) -> InvokeResult:
        """Run one call to completion and record it through `recorder` (by default this
        invoker's own, for synchronous calls). Raises Throttled (nothing recorded)."""
        result = await self._calls.call(request)
        await (recorder or self._recorder).record(request, result)
        return result
