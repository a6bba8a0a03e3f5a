"""Ballooning of function pods (Kubernetes): idle pods deflated by in-place resize.

A pod has no call meter: its cgroup files are on another machine, and there is no freezer.
So its working set comes from the resource metrics API (the driver's `working_set_mb`, the
kubelet's own figure, at most one metrics resolution old) and its limit changes through
the API (`set_memory_limit`: an in-place resize, done once its kubelet runs it so, about a
kubelet sync). Both are awaited, so each look at a pod runs in a task of its own; the pure
policy (`balloon.decide`) decides on what the look read, with the time it ends at.

What `Balloons` does for a deflation through the engine holds here: calls given the pod
while its limit changes wait for it, the books change only once it is done, and a call
inflates the pod back to its full memory before it runs (or goes elsewhere when that fails).

Where it is off: a cluster without in-place resize (`can_resize` False), one that refused
to lower a memory limit (`can_lower_memory` False: Kubernetes 1.33), and one without the
metrics API (no working set: the driver says so once). Pods then keep their full size.

An idle pod is not frozen: it may allocate while deflated. Its working set is read again
every metrics resolution, and one that outgrew its headroom is given room back (`Inflate`);
the kubelet of 1.34 refuses to set a limit below what the container uses. At worst an
idle pod is OOM-killed, which costs a cold start, never a call (calls run at full size).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container, Iterable
from typing import Protocol, runtime_checkable

from invoker.containers.balloon import BalloonConfig, BalloonView, Deflate, Inflate, decide
from invoker.containers.slots import Slot
from invoker.drivers.base import ContainerHandle

log = logging.getLogger("nimbus.invoker")

METRICS_PERIOD_S = 15.0
"""metrics-server's default resolution: a pod's working set is read at most this often
(a new sample comes no sooner), and a pod whose change failed is tried again after it."""


@runtime_checkable
class SizesPods(Protocol):
    """A driver whose containers are resized through its API and measured by it."""

    async def can_resize(self) -> bool | None:
        """True or False once known; None until the first resize tells."""
        ...

    def can_lower_memory(self) -> bool | None:
        """False once the cluster refused to lower a memory limit in place."""
        ...

    async def working_set_mb(self, handle: ContainerHandle) -> float | None:
        """The container's working set now (MiB); None when unknown."""
        ...


def due(slot: Slot, now: float, next_look: float, config: BalloonConfig) -> bool:
    """Is an idle pod worth a metrics read now: past its idle grace (before it the policy
    holds whatever the reading) and its last reading one resolution old?"""
    if now < next_look:
        return False
    return slot.last_used is None or now >= slot.last_used + config.idle_grace_s


class PodBalloons:
    """Looks at idle pods (a metrics read, the policy, a resize), one task per pod."""

    def __init__(
        self,
        driver: SizesPods,
        config: BalloonConfig,
        *,
        clock: Callable[[], float],
        idle: Callable[[Slot], bool],
        limit_of: Callable[[Slot], int],
        room: Callable[[Slot, int], bool],
        change: Callable[[Slot, int], Awaitable[bool]],
    ) -> None:
        self._driver = driver
        self._config = config
        self._clock = clock
        self._idle = idle  # idle, and its limit may change now (nothing else changes it)
        self._limit_of = limit_of
        self._room = room  # may an idle pod's limit grow so on its node?
        self._change = change  # the resize; calls wait for it, books change once done
        self._next: dict[str, float] = {}  # slot id -> when to read its working set again
        self._tasks: dict[str, asyncio.Task[bool]] = {}

    def start(self, slots: Iterable[Slot]) -> int:
        """Start a look at each idle pod that is due; returns how many started."""
        if self._driver.can_lower_memory() is False:
            return 0  # nothing gets deflated, so nothing needs inflating back either
        now = self._clock()
        started = 0
        for slot in slots:
            if slot.id in self._tasks:
                continue
            if not due(slot, now, self._next.get(slot.id, 0.0), self._config):
                continue
            task = asyncio.create_task(self._look(slot), name=f"nimbus-balloon-{slot.id}")
            self._tasks[slot.id] = task
            task.add_done_callback(self._done)
            started += 1
        return started

    def _done(self, task: asyncio.Task[bool]) -> None:
        for sid, mine in list(self._tasks.items()):
            if mine is task:
                del self._tasks[sid]

    async def _look(self, slot: Slot) -> bool:
        """Look at one pod; a failure costs this look only (the loop outlives it)."""
        try:
            return await self._resize_as_told(slot)
        except Exception:
            log.exception("ballooning pod of container %s failed", slot.id)
            return False

    async def _resize_as_told(self, slot: Slot) -> bool:
        """Read the pod's working set, ask the policy, resize as it says; True when the
        pod's limit changed."""
        handle = slot.handle
        if handle is None or await self._driver.can_resize() is False:
            self._next[slot.id] = float("inf")
            return False
        try:
            working_set = await self._driver.working_set_mb(handle)
        finally:
            self._next[slot.id] = self._clock() + METRICS_PERIOD_S
        # From here to the change's own hold on calls there is no await: a call cannot
        # take the pod between this check and the resize.
        if working_set is None or not self._idle(slot):
            return False
        view = BalloonView(slot.memory_mb, self._limit_of(slot), working_set, slot.last_used)
        decision = decide(view, self._clock(), self._config)
        if isinstance(decision, Deflate) and self._driver.can_lower_memory() is False:
            return False
        if isinstance(decision, Inflate) and not self._room(slot, decision.limit_mb):
            return False  # no room to give it back: only this idle pod is at risk
        if not isinstance(decision, Deflate | Inflate):
            return False
        return await self._change(slot, decision.limit_mb)

    def forget(self, alive: Container[str]) -> None:
        """Drop what is kept of containers that are gone."""
        for gone in [sid for sid in self._next if sid not in alive]:
            del self._next[gone]

    async def settled(self) -> None:
        """Wait until every look under way has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop the looks under way (a resize stopped halfway leaves the books unchanged:
        they change only once one is done)."""
        for task in self._tasks.values():
            task.cancel()
        await self.settled()
