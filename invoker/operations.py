"""What the gateway may ask of the invoker: operations, never its attributes.

Handlers call these (deploy, delete, invoke, submit, nodes, ...) and get plain values
back; the order a use case needs (forget what keep-alive learned before the store deletes,
retire containers after) lives here, once. Reads are cheap: the nodes report is what the
last consolidation round planned, not a fresh plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from invoker.api import ActivationIds, FunctionSpec, InvokeRequest, InvokeResult
from invoker.dispatcher import Dispatcher
from invoker.nodes.migration import MigrationRecord, migrations_json
from invoker.nodes.model import Node
from invoker.own_images import admitted
from invoker.sequences import stored_runner
from invoker.service import Invoker
from invoker.step_routing import Step
from invoker.store.base import FunctionDraft, Store, StoredFunction
from invoker.versions import (
    DEFAULT_VERSION_RETENTION,
    Qualifier,
    SplitCounter,
    UnknownAlias,
    UnknownVersion,
    choose,
    parse_qualifier,
    split_target,
)


@dataclass(frozen=True)
class ContainerView:
    """One container on a node as an operator reads it (a stem cell has no function)."""

    id: str
    tenant: str | None
    function: str | None
    version: int | None
    memory_mb: int
    resident_mb: int  # its memory limit now (below memory_mb while deflated)
    state: str


@dataclass(frozen=True)
class NodeView:
    """One node as an operator reads it."""

    node: Node
    containers: tuple[str, ...]
    details: tuple[ContainerView, ...] = ()
    hot: bool = False
    load: tuple[float, ...] | None = None  # measured (vCPUs busy, memory MB in use)


@dataclass(frozen=True)
class NodesReport:
    """The VM pool: its provider, its nodes, and how tightly they are packed."""

    provider: str
    enforced: bool
    nodes: tuple[NodeView, ...]
    nodes_ready: int
    nodes_needed: int | None  # what a fresh packing needed at the last consolidation round


class UnknownFlavor(KeyError):
    """No node flavor of that name; `known` lists the pool's own."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(name)
        self.known = tuple(known)


class NoPool(Exception):
    """This deployment has no VM pool (vm_provider none)."""


@dataclass(frozen=True)
class Resolved:
    """The version a call runs, and the alias that chose it (if one did)."""

    function: StoredFunction
    alias: str | None = None


class Operations:
    """The invoker's parts behind one narrow face, as the assembly built them."""

    def __init__(
        self,
        store: Store,
        invoker: Invoker,
        dispatcher: Dispatcher,
        *,
        version_retention: int = DEFAULT_VERSION_RETENTION,
        step: Step | None = None,
    ) -> None:
        self._store = store
        self._retention = max(1, version_retention)  # versions kept per function
        self._splits = SplitCounter()  # each alias's calls dealt out in its proportions
        self.invoker = invoker  # for the assembly and tests; handlers use the methods
        self._dispatcher = dispatcher
        # The call path the dispatcher's attempts take too (invoker/sequences.py); a
        # sequence's steps through `step` (with several workers: in their owners).
        self._calls = stored_runner(store, invoker.invoke, ActivationIds().next, step=step)
        self._changed: list[Callable[[str, str], None]] = []

    def on_change(self, listener: Callable[[str, str], None]) -> None:
        """Call `listener(tenant, name)` whenever a function is deployed or deleted."""
        self._changed.append(listener)

    def _notify(self, tenant: str, name: str) -> None:
        for listener in self._changed:
            listener(tenant, name)

    # ---- functions ----

    def largest_container_mb(self) -> int:
        """The most memory one container can ever get here."""
        return self.invoker.largest_container_mb()

    async def deploy(self, draft: FunctionDraft, now: float) -> tuple[StoredFunction, bool]:
        """Store a new version (and prune the oldest past the retention that no alias
        names); warm containers of the earlier ones drain, and an earlier version called
        by name or alias starts its own again, except when only the memory (or timeout,
        params) changed: then the latest version's idle containers are resized in place
        and serve the new one warm. (stored, created).

        A function with an image of its own is checked against the engine first
        (ImageRejected: the image is missing, runs as root where that is not allowed, or
        the driver runs no such images); the draft stored has its protocol settled."""
        draft = await admitted(self.invoker.driver, draft)
        previous = await self._store.get_function(draft.tenant, draft.name)
        stored, created = await self._store.put_function(draft, now)
        self._notify(draft.tenant, draft.name)
        if not created:
            await self._store.prune_versions(draft.tenant, draft.name, self._retention)
            if previous is not None:  # same code, new memory: its idle containers carry over
                await self.invoker.redeployed(previous.spec, stored.spec)
            else:
                await self.invoker.retire(draft.tenant, draft.name)
        return stored, created

    async def resolve(
        self, tenant: str, name: str, qualifier: Qualifier, *, request_id: str | None = None
    ) -> Resolved | None:
        """The version a call of `name` qualified so runs; None without the function.

        An alias's split picks by `request_id` when one is given (sticky), else in exact
        proportions (`invoker.versions`). Raises UnknownVersion or UnknownAlias (also for
        an alias whose version was deleted since).
        """
        latest = await self._store.get_function(tenant, name)
        if latest is None or qualifier.latest:
            return None if latest is None else Resolved(latest)
        alias = qualifier.alias
        if alias is not None:
            found = await self._store.get_alias(tenant, name, alias)
            if found is None:
                raise UnknownAlias(name, alias)
            version = choose(self._splits, (tenant, name, alias), found.split, request_id)
        else:
            assert qualifier.version is not None
            version = qualifier.version
        if version == latest.spec.version:
            return Resolved(latest, alias)
        stored = await self._store.get_version(tenant, name, version)
        if stored is None:
            raise UnknownVersion(name, version)
        return Resolved(stored, alias)

    async def resolve_target(
        self, tenant: str, target: str, *, request_id: str | None = None
    ) -> Resolved | None:
        """`resolve` for a target written `name` or `name:qualifier` (a rule's function, a
        web path). Raises VersionError for a bad qualifier, UnknownVersion, UnknownAlias."""
        name, qualifier = split_target(target)
        asked = Qualifier() if qualifier is None else parse_qualifier(qualifier)
        return await self.resolve(tenant, name, asked, request_id=request_id)

    async def delete(self, tenant: str, name: str) -> bool:
        """Delete a function and its containers; False when there is none."""
        # Forget first: a keep-alive save while the store deletes the function would
        # otherwise write its history back.
        self.invoker.forget(tenant, name)
        if not await self._store.delete_function(tenant, name):
            return False
        self._notify(tenant, name)
        await self.invoker.retire(tenant, name)
        return True

    async def forget_tenant(self, tenant: str, functions: set[str]) -> set[str]:
        """A tenant is being deleted: forget what keep-alive learned of its functions
        (and of any still running); returns every function name to retire afterwards."""
        running = {c.spec.name for c in self.invoker.containers(tenant) if c.spec is not None}
        for function in running | functions:
            self.invoker.forget(tenant, function)
        return running | functions

    async def retire(self, tenant: str, names: set[str]) -> None:
        """Remove the containers of these functions (idle now, busy when done)."""
        for name in names:
            await self.invoker.retire(tenant, name)

    # ---- calls ----

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Run a call now and record it: the function's default params under the call's
        args, a sequence step by step (each step its own activation). Raises Throttled
        when nothing could start."""
        return await self._calls.call(request)

    async def run_step(self, request: InvokeRequest) -> InvokeResult:
        """Run a step of code that a sequence in another worker sent to this one (its
        function's owner) as the sequence chose it (activation id, version, args), and
        record it as a synchronous call: metered and billed here, once. Raises Throttled."""
        return await self.invoker.invoke(request)

    async def submit(
        self, spec: FunctionSpec, args: Mapping[str, Any], *, trigger: str | None = None
    ) -> str:
        """Queue a call of the version `spec` is (resolved now: `resolve`) durably; its
        activation id. It runs as `invoke` runs a call (params merged when it runs,
        sequences step by step), on that version. Raises BacklogFull."""
        return await self._dispatcher.submit(spec, args, trigger=trigger)

    async def submit_many(
        self, calls: Sequence[tuple[FunctionSpec, Mapping[str, Any]]], *, trigger: str | None
    ) -> list[str]:
        """Queue calls of one tenant atomically. Raises BacklogFull."""
        return await self._dispatcher.submit_many(calls, trigger=trigger)

    @property
    def driver_name(self) -> str:
        """Which container driver runs functions."""
        return self.invoker.driver.name

    # ---- nodes (admin) ----

    def nodes_report(self) -> NodesReport | None:
        """The pool as it stands; None without a VM pool."""
        pool = self.invoker.nodes
        if pool is None:
            return None
        ready, needed = pool.packing()
        heat = self.invoker.hot_spots
        views = tuple(
            NodeView(
                n,
                tuple(pool.containers_on(n.id)),
                self._details(n.id),
                heat is not None and n.id in heat.hot(),
                None if heat is None else heat.load.get(n.id),
            )
            for n in pool.nodes.values()
        )
        return NodesReport(pool.provider.name, pool.provider.enforced, views, ready, needed)

    def _details(self, node_id: str) -> tuple[ContainerView, ...]:
        balloons = self.invoker.balloons
        out = []
        for slot in self.invoker.slots.values():
            if slot.node != node_id:
                continue
            spec = slot.spec
            out.append(
                ContainerView(
                    slot.id,
                    None if spec is None else spec.tenant,
                    None if spec is None else spec.name,
                    None if spec is None else spec.version,
                    slot.memory_mb,
                    slot.memory_mb if balloons is None else balloons.limit_mb(slot),
                    slot.state.value,
                )
            )
        return tuple(sorted(out, key=lambda c: c.id))

    async def add_node(self, flavor: str) -> Node:
        """Provision a node of a named flavor. UnknownFlavor, NoPool, NoCapacity."""
        pool = self.invoker.nodes
        if pool is None:
            raise NoPool("this deployment has no VM pool (vm_provider is none)")
        try:
            pool.flavor(flavor)
        except KeyError:
            raise UnknownFlavor(flavor, [f.name for f in pool.flavors]) from None
        return await pool.add(flavor)

    async def drain_node(self, node_id: str) -> str | None:
        """Drain a node (its warm containers migrate away, it is released once empty); its
        state after, None if unknown."""
        drained = await self.drain(node_id)
        return None if drained is None else drained[0]

    async def drain(self, node_id: str) -> tuple[str, list[MigrationRecord]] | None:
        """Drain a node: its state after and the migrations started; None if unknown."""
        pool = self.invoker.nodes
        if pool is None or node_id not in pool.nodes:
            return None
        started = await self.invoker.drain_node(node_id)
        state = pool.nodes[node_id].state.value if node_id in pool.nodes else "released"
        return state, started

    def migrate(self, node_id: str, container: str, target: str | None) -> MigrationRecord:
        """Start moving one container off `node_id` (to `target`, else where policy says).
        KeyError: no such node, or the container is not on it; NotMovable; NoCapacity."""
        pool, migrations = self.invoker.nodes, self.invoker.migrations
        if pool is None or migrations is None or node_id not in pool.nodes:
            raise KeyError(node_id)
        if container not in pool.nodes[node_id].allocations:
            raise KeyError(container)
        return migrations.start(container, target, "admin")

    def migrations(self, limit: int = 100) -> dict[str, Any]:
        """The body of `GET /v1/migrations`: the latest migrations with their measured cost."""
        migrations = self.invoker.migrations
        return migrations_json(migrations.records() if migrations is not None else [], limit)

    async def resize_node(self, node_id: str, vcpu: float | None, memory_mb: int | None) -> Node:
        """Change a node's vCPU and memory while it runs (None: keep that one). KeyError for
        an unknown node; NoPool; ValueError when what is allocated would not fit (nothing
        changes); NotResizable (fixed machines) and ResizeRefused (the kernel said no)."""
        pool = self.invoker.nodes
        if pool is None:
            raise NoPool("this deployment has no VM pool (vm_provider is none)")
        node = pool.nodes[node_id]
        return await pool.resize(
            node_id,
            node.flavor.vcpu if vcpu is None else vcpu,
            node.flavor.memory_mb if memory_mb is None else memory_mb,
        )
