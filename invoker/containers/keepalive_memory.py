"""What the keep-alive policy learned, kept across restarts.

Every call is observed; the functions whose history changed are saved to the store now and
then (and at stop) and restored at start, so a restart does not forget each function's
rhythm. The policy itself (`keepalive.py`) stays pure; this is its memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from invoker.api import FunctionSpec
from invoker.containers.keepalive import KeepAliveDecision, KeepAlivePolicy
from invoker.containers.model import policy_key
from invoker.store.base import Store

log = logging.getLogger("nimbus.invoker")


class KeepAliveMemory:
    """A keep-alive policy, the functions it learned about since the last save, and saves."""

    def __init__(
        self,
        policy: KeepAlivePolicy,
        store: Store,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        save_every_s: float,
    ) -> None:
        self.policy = policy
        self._store = store
        self._clock = clock
        self._wall = wall
        self._save_every_s = save_every_s
        self._learned: set[tuple[str, str]] = set()  # histories changed since the last save
        self._saved_at = 0.0

    def observe(self, spec: FunctionSpec, now: float) -> None:
        """A call of `spec` arrived at `now`."""
        key = policy_key(spec)
        self.policy.observe(key, now)
        self._learned.add(key)

    def decide(self, spec: FunctionSpec, now: float) -> KeepAliveDecision:
        """The function's container went idle at `now`: how long to keep it."""
        return self.policy.decide(policy_key(spec), now)

    def forget(self, tenant: str, name: str) -> None:
        """The function is deleted: drop what was learned of it, and do not save it."""
        self.policy.forget((tenant, name))
        self._learned.discard((tenant, name))

    async def restore(self) -> int:
        """Pick up what the policy learned before the last stop; returns how many functions."""
        restored = 0
        for tenant, function, state in await self._store.load_keepalive(self.policy.name):
            try:
                self.policy.restore_state((tenant, function), state)
                restored += 1
            except (ValueError, KeyError, TypeError) as exc:  # other bins, or damaged
                log.warning("keep-alive history of %s/%s not restored: %s", tenant, function, exc)
        if restored:
            log.info("restored the keep-alive history of %d functions", restored)
        self._saved_at = self._clock()
        return restored

    def save_due(self) -> bool:
        """Whether the last save is old enough for another (a crash loses at most that)."""
        return self._clock() - self._saved_at >= self._save_every_s

    async def save(self) -> int:
        """Store the histories that changed since the last save; returns how many."""
        keys, self._learned = self._learned, set()
        states = [
            (tenant, function, state)
            for tenant, function in sorted(keys)
            if (state := self.policy.export_state((tenant, function))) is not None
        ]
        try:
            await self._store.save_keepalive(self.policy.name, states, self._wall())
        except BaseException:  # failed or cancelled: these are still to be saved
            self._learned |= {(t, f) for t, f, _ in states}
            raise
        self._saved_at = self._clock()
        return len(states)
