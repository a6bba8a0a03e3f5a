"""PURE: each tenant's calls in flight, as the pool counts them against the tenant's cap.

`InFlight` is what the pool asks. `LocalInFlight` counts this process's calls: with one
process, the whole gateway's. Under `nimbus serve --workers N` each worker's pool counts
through `invoker.shared_in_flight.WorkerInFlight`, which also sees the other workers'
counts, so a tenant's cap holds for all the workers together rather than in each.
"""

from __future__ import annotations

from typing import Protocol


class InFlight(Protocol):
    """Calls of each tenant that were given a container and have not ended yet."""

    def admit(self, tenant: str, cap: int) -> bool:
        """Count one more call of `tenant` if its calls in flight are under `cap`."""
        ...

    def done(self, tenant: str) -> None:
        """One call of `tenant` ended (or was never run); never below zero."""
        ...

    def mine(self, tenant: str) -> int:
        """This process's calls of `tenant` in flight."""
        ...


class LocalInFlight:
    """This process's counts, in a dict (a tenant at zero has no entry)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def admit(self, tenant: str, cap: int) -> bool:
        """Count one more call of `tenant` if this process has fewer than `cap` in flight."""
        count = self._counts.get(tenant, 0)
        if count >= cap:
            return False
        self._counts[tenant] = count + 1
        return True

    def done(self, tenant: str) -> None:
        """One call of `tenant` ended."""
        count = self._counts.get(tenant, 0)
        if count > 1:
            self._counts[tenant] = count - 1
        else:
            self._counts.pop(tenant, None)

    def mine(self, tenant: str) -> int:
        """This process's calls of `tenant` in flight."""
        return self._counts.get(tenant, 0)
