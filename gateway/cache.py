"""Short-lived read caches in front of the store for the hot invoke path.

A warm call should not pay two store round trips before it reaches a container. Entries
live for `ttl_s` (so several gateways sharing one store converge quickly) and are
dropped at once when this gateway changes the function itself. When an entry runs out
under load, the calls that find it gone wait for one load rather than each asking the
store (16 clients made 16 identical reads every `ttl_s`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # read, so a failure nobody waited for is not reported as lost


class TtlCache(Generic[K, V]):
    """A small read-through cache with a time-to-live and explicit invalidation."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._changes = 0  # invalidations so far: a load that began before one is not kept

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or `load()`'s (cached unless it is None). Callers that miss
        the same key at once share one load; one of them going away does not cancel it."""
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(key, load))
            loading.add_done_callback(_retrieved)  # every waiter may have gone away
        return await asyncio.shield(loading)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        changes = self._changes
        try:
            value = await load()
        finally:
            if self._loading.get(key) is asyncio.current_task():  # not a newer load's
                del self._loading[key]
        if value is not None and changes == self._changes:
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude but bounded; the store is the truth
            self._entries[key] = (self._clock() + self._ttl, value)
        return value

    def invalidate(self, key: K) -> None:
        """Forget one entry (this gateway changed it); a load under way is not kept."""
        self._entries.pop(key, None)
        self._loading.pop(key, None)  # later callers load anew, after the change
        self._changes += 1
