"""Short-lived read caches in front of the store for the hot invoke path.

A warm call should not pay two store round trips before it reaches a container. Entries
live for `ttl_s` (so several gateways sharing one store converge quickly) and are
dropped at once when this gateway changes the function itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


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

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or `load()`'s (cached unless it is None)."""
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await load()
        if value is not None:
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude but bounded; the store is the truth
            self._entries[key] = (now + self._ttl, value)
        return value

    def invalidate(self, key: K) -> None:
        """Forget one entry (this gateway changed it)."""
        self._entries.pop(key, None)
