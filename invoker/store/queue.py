"""The store's durable queue of async calls: accept, claim under a lease, finish or retry.

The rules, for every dialect (`invoker.store.sql.queue` states them once):

- an accepted call is a pending activation and a queue entry, written together; past the
  tenant's backlog, nothing is written;
- a claim takes due calls in the fair order (`invoker.fairness`) and holds each under a
  lease its gateway renews; a running call whose lease ran out is due again, and taking
  it over costs the attempt that was lost with its gateway;
- a finished attempt is recorded (with its usage) and the call leaves the queue or waits
  for its retry; only the gateway holding the claim changes the entry;
- a deferred call goes back without costing an attempt (the platform was busy);
- after a crash a gateway's running calls (and unowned ones) go back, each costing one;
- with several workers (`nimbus serve --workers N`) a call carries the worker owning its
  function (`invoker.ownership`), and a worker claims only its own calls, calls with no
  owner, and calls whose owner has not said it is alive (`mark_worker_alive`) for a grace
  period and that were accepted before it began: a restarted worker keeps its identity
  and so its calls, and calls of a worker gone for good are never lost.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from invoker.api import Activation

LEASE_S = 30.0
"""How long a claimed async call is its gateway's without a renewal (renewed every third)."""

OWNER_GRACE_S = 2 * LEASE_S
"""How long a worker's calls stay its own after it last said it was alive (every third of
a lease): far longer than the supervisor takes to start it again."""


@dataclass(frozen=True)
class QueuedCall:
    """An accepted async call waiting in (or claimed from) the durable queue."""

    activation_id: str
    tenant: str
    function: str
    args: Mapping[str, Any]
    trigger: str | None
    attempts: int  # attempts already made
    created: float


class QueueStore(Protocol):
    """The durable queue of async calls (the rules above)."""

    async def enqueue(
        self,
        activation: Activation,
        args: Mapping[str, Any],
        not_before: float,
        *,
        backlog: int | None = None,
        owner: int | None = None,
    ) -> bool:
        """Accept an async call: its pending activation and its queue entry, atomically.

        With `backlog`, only while the tenant's calls queued or running stay within it:
        False, and nothing stored, when the call would pass it. `owner`: the worker owning
        the call's function (None: any claims it).
        """
        ...

    async def enqueue_all(
        self,
        calls: Sequence[tuple[Activation, Mapping[str, Any]]],
        not_before: float,
        *,
        backlog: int | None = None,
        owners: Mapping[str, int] | None = None,
    ) -> bool:
        """Accept several calls of one tenant atomically: all, or (past `backlog`) none.

        `owners`: the worker owning each function named (a call of a function not in it
        has no owner).
        """
        ...

    async def queue_backlog(self, tenant: str) -> int:
        """The tenant's async calls queued or running."""
        ...

    async def claim(
        self,
        now: float,
        limit: int,
        *,
        owner: str = "",
        lease_s: float = LEASE_S,
        skip: Collection[str] = (),
        worker: int | None = None,
        grace_s: float = OWNER_GRACE_S,
    ) -> list[QueuedCall]:
        """Mark up to `limit` due calls running, fair between tenants, and return them.

        The order is `invoker.fairness.fair_order`: the tenant with the fewest calls
        running goes first, each tenant's calls oldest first. `skip`'s tenants get none.

        Each claim is a lease of `lease_s` held by `owner` (a gateway), which renews it while
        the call runs; a running call whose lease ran out (its gateway died) is due again.

        Only calls `worker` may run are taken: its own, unowned ones, and those of a
        worker silent for `grace_s` that were accepted over `grace_s` ago.
        """
        ...

    async def renew(self, owner: str, activation_ids: Sequence[str], until: float) -> None:
        """Extend `owner`'s leases on these running calls to `until`."""
        ...

    async def mark_worker_alive(self, worker: int, now: float) -> None:
        """Worker `worker` is alive at `now`: its calls stay its own for a grace period."""
        ...

    async def finish_attempt(
        self,
        activation: Activation,
        usage: Mapping[str, Any] | None,
        retry_at: float | None,
        *,
        owner: str | None = None,
    ) -> None:
        """Record one attempt; requeue the call for `retry_at`, or take it off the queue.

        With `owner`, the queue entry changes only while that gateway holds the claim.
        """
        ...

    async def defer(
        self, activation_id: str, not_before: float, *, owner: str | None = None
    ) -> None:
        """Put a claimed call back without counting an attempt (only while `owner` holds it)."""
        ...

    async def requeue_running(self, owner: str = "") -> int:
        """After a crash: calls `owner` (or nobody on record) had running go back to the queue.

        Other gateways' running calls are theirs while their leases hold.
        """
        ...

    async def queue_depth(self) -> int:
        """Calls accepted and not yet finished."""
        ...

    async def next_due(self, worker: int | None = None) -> float | None:
        """When the earliest queued call `worker` owns (or nobody owns) is due, if any."""
        ...
