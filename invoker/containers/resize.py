"""A function's memory changed, its code did not: idle warm containers resized in place.

A redeploy makes a new version, and a warm container serves exactly one version: normally
the old version's containers are retired and the next call starts cold. When only what
sizes or bounds a call changed (memory, timeout, default params, web settings), the code
loaded in an idle container is the new version's code too: the container is re-keyed to
the new version and its memory limit changed in place, so the next call is warm.

In place only when it is safe: the container is idle (no call is inside, none can enter
before the write, which has no await), its node can book the new size (as a new container
would need it), the pool's memory bound holds, and the kernel takes the new limit. Anything
else is replaced as before (retired: the next call starts a container at the new size).

cgroup v1 detail: Docker sets `memory.memsw.limit_in_bytes` (memory + swap) to the full size
at start, and the kernel refuses a memory limit above it; growing writes memsw first, then
the limit, shrinking the limit first, then memsw. cgroup v2 keeps swap apart (`memory.max`
alone). Its CPU quota stays what it started with.

A container whose files cannot be written here is resized through its engine where the
driver resizes in place (`can_resize`: Kubernetes' in-place pod resize), which takes a sync
of the pod's kubelet, not a write: the container is re-keyed at once, calls given it wait
for the resize (`Balloons.hold_calls`, as for an inflation), and the resize runs in a task.
The node books the larger of the two sizes meanwhile (a growth is promised before it is
used, a shrink freed once done). A resize the engine does not do (refused, Infeasible,
timed out: the driver withdraws its own patch) puts the books back at the old size and
retires the container: it is replaced, as before. Elsewhere (a remote engine, or no
ballooning to make calls wait) the container is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from invoker.api import FunctionSpec
from invoker.containers.balloon import MB
from invoker.containers.ballooning import Balloons
from invoker.containers.cgroups import CallMeter, LimitWrite
from invoker.containers.pool import Pool
from invoker.containers.slots import Slot, State
from invoker.drivers.base import ContainerDriver, ContainerHandle
from invoker.nodes.node_pool import NodePool

log = logging.getLogger("nimbus.invoker")


def same_code(old: FunctionSpec, new: FunctionSpec) -> bool:
    """Would a container loaded with `old` run `new` exactly as a fresh one would?"""
    return (
        old.tenant == new.tenant
        and old.name == new.name
        and old.runtime == new.runtime
        and old.handler == new.handler
        and old.code_sha256 == new.code_sha256
        and old.code_kind == new.code_kind
        and dict(old.env) == dict(new.env)
        and old.network == new.network
        and old.concurrency == new.concurrency
        and not old.sequence
        and not new.sequence
        # An image's tag may point at a new build since: its containers never carry over.
        and old.image is None
        and new.image is None
    )


def _write(path: Path, mb: int) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, str(mb * MB).encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def write_limits(meter: CallMeter, old_mb: int, new_mb: int, limit_mb: int | None) -> bool:
    """Change a container's full size from `old_mb` to `new_mb` in its cgroup: the memsw
    ceiling (v1) and, when `limit_mb` is given, the memory limit itself (a deflated
    container keeps its limit). False, nothing changed, when the kernel refused."""
    files = meter.memory
    if files is None:
        return False
    memsw = None if meter.v2 else files.limit.with_name("memory.memsw.limit_in_bytes")
    if memsw is not None and not memsw.exists():
        memsw = None  # swap accounting off: no ceiling to move
    grow = new_mb > old_mb
    if grow and memsw is not None and not _write(memsw, new_mb):
        return False
    if limit_mb is not None and meter.set_memory_limit(limit_mb) is not LimitWrite.DONE:
        if grow and memsw is not None:
            _write(memsw, old_mb)
        return False
    if not grow and memsw is not None and not _write(memsw, new_mb):
        log.warning("memsw of a container stays at %d MB (its limit is %d MB)", old_mb, new_mb)
    return True


@runtime_checkable
class ResizesInPlace(Protocol):
    """A driver that changes a running container's memory through its engine, where the
    cluster can (`set_memory_limit`), and says whether it can."""

    async def can_resize(self) -> bool | None:
        """True or False once known; None until the first resize tells."""
        ...


class Resizer:
    """Carries a redeployed function's idle containers over to its new version."""

    def __init__(
        self,
        pool: Pool,
        driver: ContainerDriver,
        *,
        nodes: NodePool | None = None,
        balloons: Balloons | None = None,
    ) -> None:
        self._pool = pool
        self._slots = pool.slots
        self._driver = driver
        self._nodes = nodes
        self._balloons = balloons
        # Through the engine: not known unable until the driver says so after a resize.
        self._engine = isinstance(driver, ResizesInPlace)
        self._tasks: set[asyncio.Task[None]] = set()

    def carry_over(self, old: FunctionSpec, new: FunctionSpec) -> list[str]:
        """Re-key `old`'s idle containers to `new`, resized in place (or being resized
        through the engine); the ids carried over. Synchronous on purpose: no call can take
        a container between the check and the write (or the hold on its calls). The caller
        retires the rest."""
        if not same_code(old, new):
            return []
        kept = []
        for slot in self._slots.of(old.key):
            if self._resize(slot, new.memory_mb):
                self._slots.rekey(slot, new.key)
                slot.spec = new
                kept.append(slot.id)
        if kept:
            log.info("%d containers of %s/%s resized in place", len(kept), new.tenant, new.name)
        return kept

    async def settled(self) -> None:
        """Wait until every resize through the engine has ended (landed or replaced)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop resizes under way (their containers are being removed with the rest)."""
        for task in self._tasks:
            task.cancel()
        await self.settled()

    def _resize(self, slot: Slot, new_mb: int) -> bool:
        if slot.state is not State.IDLE or slot.retired or slot.handle is None:
            return False
        if self._balloons is not None and self._balloons.changing(slot.id):
            return False
        old_mb = slot.memory_mb
        if new_mb == old_mb:
            return True
        if self._slots.memory_used() + new_mb - old_mb > self._pool.limits.memory_mb:
            return False
        meter = self._driver.call_meter(slot.handle)
        if meter is None or meter.memory is None:
            return self._start_through_engine(slot, slot.handle, new_mb)
        if not self._regrow(slot, new_mb):
            return False
        limit = self._balloons.limit_mb(slot) if self._balloons is not None else old_mb
        keep_deflated = limit < old_mb and limit < new_mb
        if not write_limits(meter, old_mb, new_mb, None if keep_deflated else new_mb):
            self._regrow(slot, old_mb)
            return False
        slot.memory_mb = new_mb
        if self._balloons is not None:
            self._balloons.resized(slot, limit if keep_deflated else new_mb)
        return True

    def _regrow(self, slot: Slot, memory_mb: int) -> bool:
        """Book the container at `memory_mb` on its node; False when the node cannot."""
        nodes, node_id = self._nodes, slot.node
        return nodes is None or node_id is None or nodes.regrow(slot.id, node_id, memory_mb)

    # ---- through the engine (Kubernetes) ----

    def _start_through_engine(self, slot: Slot, handle: ContainerHandle, new_mb: int) -> bool:
        """Start resizing the container through its engine; False (replace it) where the
        driver cannot, or no calls could wait for it. Booked before any await."""
        balloons = self._balloons
        if not self._engine or balloons is None:
            return False
        old_mb = slot.memory_mb
        if new_mb > old_mb:
            if not self._regrow(slot, new_mb):
                return False
            slot.memory_mb = new_mb
        release = balloons.hold_calls(slot)
        task = asyncio.create_task(
            self._through_engine(slot, handle, old_mb, new_mb, release),
            name=f"nimbus-resize-{slot.id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _through_engine(
        self,
        slot: Slot,
        handle: ContainerHandle,
        old_mb: int,
        new_mb: int,
        release: Callable[[bool], None],
    ) -> None:
        ok = False
        try:
            ok = await self._driver.set_memory_limit(handle, new_mb)
            if not ok and isinstance(self._driver, ResizesInPlace):
                self._engine = await self._driver.can_resize() is not False
        except Exception:  # the resize is not done: the container is replaced
            log.exception("resizing container %s to %d MB failed", slot.id, new_mb)
        finally:
            # Booked before the waiting calls wake: they find the container at its new
            # size, or retired.
            self._settle(slot, old_mb, new_mb, ok)
            release(ok)

    def _settle(self, slot: Slot, old_mb: int, new_mb: int, ok: bool) -> None:
        """Book the container at the size it runs with now; retire it when that is not
        its function's."""
        if self._slots.get(slot.id) is not slot or slot.state is State.REMOVING:
            return  # removed meanwhile: its node forgot it with it
        size = new_mb if ok else old_mb
        if size != slot.memory_mb and self._regrow(slot, size):
            slot.memory_mb = size
        if ok:
            if self._balloons is not None:
                self._balloons.resized(slot, size)  # a deflated pod runs at full size now
            return
        log.info("container %s not resized to %d MB: replaced", slot.id, new_mb)
        slot.retired = True
        if slot.state is State.IDLE:
            # Its keep-alive ends now: the next reap removes it. (A call waiting for it
            # removes it when it ends, as for any retired container.)
            slot.idle_until = slot.last_used
