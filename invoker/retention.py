"""Activation retention: activations (results and logs) older than a set number of days go.

The decision is pure (`retention_cutoff`); `RetentionSweeper` runs it periodically against
the store, whose work runs off the event loop (SQLite on its thread, PostgreSQL natively
async) in batches, then gives the freed space back (`Store.reclaim_space`). Usage records
are never swept: they are the bill. Calls still queued or running are never swept either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from invoker.store.activations import ActivationStore

log = logging.getLogger("nimbus.retention")

DEFAULT_RETENTION_DAYS = 7.0
DEFAULT_SWEEP_INTERVAL_S = 3600.0
FIRST_SWEEP_MAX_DELAY_S = 60.0  # a gateway restarted more often than hourly still sweeps
DAY_S = 86_400.0


def retention_cutoff(now: float, days: float) -> float | None:
    """Activations older than this (epoch seconds) go; None when `days` <= 0 (kept forever)."""
    if days <= 0:
        return None
    return now - days * DAY_S


class RetentionSweeper:
    """Deletes activations past the retention period every `interval_s`, then frees space."""

    def __init__(
        self,
        store: ActivationStore,
        days: float,
        interval_s: float = DEFAULT_SWEEP_INTERVAL_S,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._days = days
        self._interval_s = interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """One sweep: how many activations went."""
        cutoff = retention_cutoff(self._clock(), self._days)
        if cutoff is None:
            return 0
        deleted = await self._store.delete_activations(None, None, cutoff)
        if deleted:
            pages = await self._store.reclaim_space()
            log.info("retention: deleted %d activations, gave back %d pages", deleted, pages)
        return deleted

    async def _loop(self) -> None:
        await asyncio.sleep(min(self._interval_s, FIRST_SWEEP_MAX_DELAY_S))
        while True:
            try:
                await self.sweep_once()
            except Exception:  # a failed sweep (store full, connection lost) tries again later
                log.exception("retention sweep failed")
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        """Sweep in the background (nothing to do when retention is off)."""
        if self._days > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="nimbus-retention")

    async def close(self) -> None:
        """Stop sweeping (a sweep in progress is cancelled between batches)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
