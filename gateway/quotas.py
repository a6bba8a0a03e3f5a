"""Per-tenant limits as this gateway enforces them: concurrency, rate and async backlog.

The store is the truth (limits survive restarts and are shared by every gateway on one
database). Each gateway keeps every tenant's limits in memory, reloads them every
`refresh_s` (so another gateway's change lands within that), and applies its own
changes at once. The hot path then costs no store round trip:

- concurrency: handed to the container pool, which rejects a call past it (429); with
  `nimbus serve --workers N` each worker's pool counts the tenant's calls in flight in all
  the workers (`invoker/shared_in_flight.py`), so the cap holds for them together;
- rate: a token bucket per tenant in this gateway (429 with Retry-After); with
  `nimbus serve --workers N` one bucket per tenant in memory all the workers share
  (`SharedRates`), so the workers together let a tenant through at its rate, not N times it;
- backlog: handed to the dispatcher, which checks it in the enqueueing transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import mmap
import os
import struct
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from gateway.errors import ApiError
from gateway.ratelimit import RateLimiter, Rates, TokenBucket, retuned
from invoker.dispatcher import BacklogFull
from invoker.shared_in_flight import tenant_key
from invoker.store.base import Store
from invoker.tenant_limits import EffectiveLimits, LimitDefaults, TenantLimits, resolve

log = logging.getLogger("nimbus.quotas")


def throttled(message: str, retry_after_s: float, limit: str) -> ApiError:
    """429 with `Retry-After` (whole seconds, at least 1) naming the limit that was hit."""
    retry = max(1, math.ceil(retry_after_s))
    return ApiError(429, message, type="throttled", limit=limit).with_headers(
        {"Retry-After": str(retry)}
    )


def backlog_full(exc: BacklogFull) -> ApiError:
    """429 for an async call (or trigger fire) that the tenant's backlog has no room for."""
    return throttled(
        f"too many async calls: {exc.backlog} queued or running, the tenant's backlog limit; "
        "nothing was enqueued, retry later",
        exc.retry_after_s,
        "backlog",
    )


# One slot per tenant: its key (a hash of its name, 0 for a free slot), the bucket's rate,
# burst, tokens and last refill (CLOCK_MONOTONIC, the same clock in every process).
SLOT = struct.Struct("=Qdqdd")
PROBES = 8  # slots tried from a key's home slot before the home slot is taken over


class SharedRates:
    """Every tenant's token bucket in shared memory, for workers forked after it is made.

    The table is a memfd mapped MAP_SHARED, so every worker forked later sees the same
    pages; each take holds a POSIX record lock on it for a few microseconds (the kernel
    lets go of it if its holder dies). Bounded: a tenant whose slots are all taken takes
    over its home slot, and a forgotten bucket starts full, as `RateLimiter` does.
    """

    def __init__(self, slots: int = 16_384) -> None:
        self._slots = slots
        self._fd = os.memfd_create("nimbus-rates", 0)  # inherited by the forked workers
        os.ftruncate(self._fd, slots * SLOT.size)
        self._table = mmap.mmap(self._fd, slots * SLOT.size)  # zero-filled: every slot free

    def take(self, tenant: str, rate_per_s: float | None, burst: int | None, now: float) -> float:
        """Admit one call of `tenant` against the bucket every worker shares."""
        if rate_per_s is None or burst is None:
            return 0.0
        key = tenant_key(tenant)
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            offset, bucket = self._find(key)
            bucket = retuned(bucket, rate_per_s, burst, now)
            wait = bucket.take(now)
            fields = (bucket.rate_per_s, bucket.burst, bucket.tokens, bucket.updated)
            SLOT.pack_into(self._table, offset, key, *fields)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        return wait

    def _find(self, key: int) -> tuple[int, TokenBucket | None]:
        """The slot of `key` (offset, its bucket), or a free one or its home slot (None)."""
        home = key % self._slots
        for probe in range(PROBES):
            offset = (home + probe) % self._slots * SLOT.size
            found, rate, burst, tokens, updated = SLOT.unpack_from(self._table, offset)
            if found == key:
                return offset, TokenBucket(rate, burst, tokens, updated)
            if found == 0:
                return offset, None
        return home * SLOT.size, None

    def close(self) -> None:
        """Unmap the table and close its file (in the process that made it)."""
        self._table.close()
        os.close(self._fd)


class Quotas:
    """Every tenant's limits in memory, kept in step with the store."""

    def __init__(
        self,
        defaults: LimitDefaults,
        *,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.defaults = defaults
        self._refresh_s = refresh_s
        self._clock = clock
        self._wall = wall
        self._own: dict[str, TenantLimits] = {}
        self._rates: Rates = RateLimiter()
        self._store: Store | None = None
        self._set_caps: Callable[[Mapping[str, int]], None] | None = None
        self._changes = 0  # puts by this gateway, so a reload never undoes a newer one
        self._task: asyncio.Task[None] | None = None

    async def start(self, store: Store, set_caps: Callable[[Mapping[str, int]], None]) -> None:
        """Load every tenant's limits, then keep reloading them in the background.

        `set_caps` hands the container pool each tenant's limit on calls in flight.
        """
        self._store, self._set_caps = store, set_caps
        await self.reload()
        self._task = asyncio.create_task(self._reload_loop(), name="nimbus-quotas")

    async def close(self) -> None:
        """Stop reloading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def count_rates_in(self, rates: Rates) -> None:
        """Take tenants' rate tokens from `rates` (before the app starts): a worker of
        `nimbus serve --workers N` shares its buckets with the other workers."""
        self._rates = rates

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the platform has not started")
        return self._store

    async def reload(self) -> None:
        """Take the store's limits (unless this gateway changed one meanwhile)."""
        changes = self._changes
        own = await self.store.list_tenant_limits()
        if changes == self._changes:
            self._apply(own)

    def _apply(self, own: dict[str, TenantLimits]) -> None:
        self._own = own
        if self._set_caps is not None:
            self._set_caps(
                {t: limits.concurrency for t, limits in own.items() if limits.concurrency}
            )

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.reload()
            except Exception:  # the next round tries again; the old limits hold meanwhile
                log.exception("reloading tenant limits failed")

    def effective(self, tenant: str) -> EffectiveLimits:
        """The numbers enforced for `tenant` now."""
        return resolve(self._own.get(tenant), self.defaults)

    def own(self, tenant: str) -> TenantLimits:
        """What an admin set for `tenant` (all None: the defaults)."""
        return self._own.get(tenant) or TenantLimits()

    def backlog(self, tenant: str) -> int:
        """The tenant's async backlog limit (the dispatcher's `backlog_for`)."""
        return self.effective(tenant).backlog

    def check_rate(self, tenant: str) -> None:
        """Count one invoke of `tenant`; raise 429 when it is over its rate."""
        limits = self.effective(tenant)
        wait = self._rates.take(tenant, limits.rate_per_s, limits.burst, self._clock())
        if wait > 0:
            raise throttled(
                f"too many calls: over the rate limit of {limits.rate_per_s:g} per second "
                f"(burst {limits.burst}); retry later",
                wait,
                "rate",
            )

    async def put(self, tenant: str, limits: TenantLimits) -> bool:
        """Store a tenant's limits and apply them here at once; False: no such tenant."""
        self._changes += 1
        stored = await self.store.put_tenant_limits(tenant, limits, self._wall())
        self._changes += 1  # a reload that overlapped the write may have read the old row
        if stored:
            self._apply({**self._own, tenant: limits})
        return stored


QUOTAS = web.AppKey("quotas", Quotas)
