"""The durable queue's rules in SQL, stated once for both dialects (`invoker.store.queue`).

What the dialects say differently is asked of their `Dialect`: how a list parameter is
matched and ordered, how a claim locks its rows (PostgreSQL skips rows another gateway is
claiming; SQLite has one writer) and how concurrent enqueues of one tenant are kept from
both passing its backlog.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from invoker.api import Activation, Status
from invoker.fairness import (
    Ready,
    candidates_per_tenant,
    candidates_sql,
    fair_order,
    running_sql,
)
from invoker.store.queue import LEASE_S, OWNER_GRACE_S, QueuedCall
from invoker.store.sql.activations import save_steps, set_status
from invoker.store.sql.rows import from_row, scalar
from invoker.store.sql.statements import Dialect, SqlStore, Steps, command, each, query

# Every row of the queue is queued or running; naming both lets `queue_fair` answer.
_BACKLOG = "SELECT count(*) FROM queue WHERE state IN ('queued', 'running') AND tenant = ?1"
_INSERT = (
    "INSERT INTO queue (activation_id, tenant, function, args, trigger, attempts, not_before, "
    "state, created, owner_worker) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, 'queued', ?6, ?7)"
)
# What worker `?3` may claim: its calls, unowned ones, and those of an owner silent since
# `?4` (now less the grace) that were accepted before then too, so that a worker that is
# just starting, and has not said it is alive yet, keeps the calls accepted meanwhile.
_CLAIMABLE = (
    "owner_worker IS NULL OR owner_worker = ?3 OR (created < ?4 AND NOT EXISTS ("
    "SELECT 1 FROM queue_workers w WHERE w.worker = queue.owner_worker AND w.seen >= ?4))"
)
_ALIVE = (
    "INSERT INTO queue_workers (worker, seen) VALUES (?1, ?2) "
    "ON CONFLICT (worker) DO UPDATE SET seen = excluded.seen"
)
# Calls that worker `?1` need not wait for others to leave: its own and unowned ones.
_NEXT_DUE = (
    "SELECT min(not_before) FROM queue WHERE state = 'queued' "
    "AND (owner_worker IS NULL OR owner_worker = ?1)"
)
_DUE = "((state = 'queued' AND not_before <= ?1) OR (state = 'running' AND lease_until < ?1))"
_RENEW = "UPDATE queue SET lease_until = ?1 WHERE claimed_by = ?2 AND state = 'running' AND {ids}"
# With an owner, only while that gateway still holds the claim.
_HELD = "activation_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR claimed_by = ?2)"
_DONE = f"DELETE FROM queue WHERE {_HELD}"
_RETRY = f"UPDATE queue SET state = 'queued', not_before = ?3, attempts = ?4 WHERE {_HELD}"
_DEFER = f"UPDATE queue SET state = 'queued', not_before = ?3 WHERE {_HELD}"
# The attempt that was running is lost: it counts.
_REQUEUE = (
    "UPDATE queue SET state = 'queued', claimed_by = NULL, lease_until = NULL, "
    "attempts = attempts + 1 "
    "WHERE state = 'running' AND (claimed_by = ?1 OR claimed_by IS NULL) RETURNING activation_id"
)


def queued_from_row(row: Any) -> QueuedCall:
    """A queued call from its row."""
    return from_row(QueuedCall, row, args=json.loads(row["args"]))


def _take_sql(d: Dialect) -> str:
    """Claim the chosen calls (`?2`, in the fair order) that are still due at `?1`, at most
    `?3`, for `?4` until `?5`; every column of each claimed row, as it now is.

    The due condition is checked again on the row (its owner never changes, so the
    candidates' ownership holds): a call another gateway claimed and
    committed since the candidates were read is no longer due. In PostgreSQL the row lock
    sits between the sort and the limit, so rows another gateway holds are skipped (not
    waited for) and the next ones fill in. A call taken over from a lapsed lease lost an
    attempt with its gateway: it counts, so a call that takes gateways down is given up
    in the end.
    """
    chosen = (
        f"SELECT activation_id FROM queue WHERE {d.in_list('activation_id', 2)} AND {_DUE} "
        f"ORDER BY {d.list_position('activation_id', 2)} LIMIT ?3{d.skip_locked}"
    )
    return (
        "UPDATE queue SET attempts = attempts + CASE WHEN state = 'running' THEN 1 ELSE 0 END, "
        f"state = 'running', claimed_by = ?4, lease_until = ?5 WHERE activation_id IN ({chosen}) "
        "RETURNING *"
    )


def _fits(d: Dialect, tenant: str, adding: int, backlog: int | None) -> Steps[bool]:
    """Would `adding` more calls keep the tenant within `backlog` (None: no limit)?"""
    if backlog is None:
        return True
    yield from each(d.backlog_lock(tenant))
    queued = scalar((yield query(_BACKLOG, tenant)))
    return int(queued) + adding <= backlog


def enqueue_steps(
    d: Dialect,
    calls: Sequence[tuple[Activation, Mapping[str, Any]]],
    not_before: float,
    backlog: int | None,
    owners: Mapping[str, int],
) -> Steps[bool]:
    """Accept calls of one tenant: each a pending activation and a queue entry, tagged
    with the worker owning its function (`owners`; none if not named); all or none."""
    if calls and not (yield from _fits(d, calls[0][0].tenant, len(calls), backlog)):
        return False
    for activation, args in calls:
        yield from save_steps(d, activation, None)
        a = activation
        owner = owners.get(a.function)
        args_text = json.dumps(dict(args))
        yield command(_INSERT, a.id, a.tenant, a.function, args_text, a.trigger, not_before, owner)
    return True


@dataclass(frozen=True)
class Claimant:
    """Who claims: the gateway holding the leases, and the worker whose calls it takes."""

    owner: str  # the lease holder (`claimed_by`)
    lease_s: float
    worker: int | None = None  # None: one process, owning no calls of its own
    grace_s: float = OWNER_GRACE_S  # a silent owner's calls are its own this long


def claim_steps(
    d: Dialect, now: float, limit: int, by: Claimant, skip: Collection[str]
) -> Steps[list[QueuedCall]]:
    """Take up to `limit` due calls `by.worker` may run (`_CLAIMABLE`) in the fair order,
    under `by.owner`'s lease until `now + by.lease_s`; a call whose lease ran out costs
    the attempt lost with its gateway."""
    per_tenant = candidates_per_tenant(limit)
    sql = candidates_sql("?1", "?2", lateral=d.lateral, claimable=_CLAIMABLE)
    candidates = yield query(sql, now, per_tenant, by.worker, now - by.grace_s)
    if not candidates.rows:
        return []
    ready = [from_row(Ready, r) for r in candidates.rows]
    running = {r["tenant"]: int(r["n"]) for r in (yield query(running_sql("?1"), now)).rows}
    order = [c.activation_id for c in fair_order(ready, running, skip)]
    if not order:
        return []
    taken = (yield query(_take_sql(d), now, order, limit, by.owner, now + by.lease_s)).rows
    if not taken:
        return []
    yield set_status(d, [r["activation_id"] for r in taken], Status.RUNNING)
    place = {activation_id: i for i, activation_id in enumerate(order)}
    return [queued_from_row(r) for r in sorted(taken, key=lambda r: place[r["activation_id"]])]


def finish_steps(
    d: Dialect,
    activation: Activation,
    usage: Mapping[str, Any] | None,
    retry_at: float | None,
    owner: str | None,
) -> Steps[None]:
    """Record the attempt; then the call leaves the queue, or waits for `retry_at`.

    A gateway whose lease ran out (another took the call over) records its attempt,
    which is the same attempt and so billed once, and leaves the queue alone.
    """
    yield from save_steps(d, activation, usage)
    if retry_at is None:
        yield command(_DONE, activation.id, owner)
    else:
        yield command(_RETRY, activation.id, owner, retry_at, activation.attempts)


def defer_steps(
    d: Dialect, activation_id: str, not_before: float, owner: str | None
) -> Steps[None]:
    """Back to the queue without costing an attempt, while `owner` holds the claim."""
    if (yield command(_DEFER, activation_id, owner, not_before)).count == 0:
        return  # another gateway holds it now: its status is that gateway's
    yield set_status(d, [activation_id], Status.PENDING)


def requeue_steps(d: Dialect, owner: str) -> Steps[int]:
    """`owner`'s running calls, and unowned ones, back to the queue; each costs an attempt."""
    ids = [r["activation_id"] for r in (yield query(_REQUEUE, owner)).rows]
    if ids:
        yield set_status(d, ids, Status.PENDING)
    return len(ids)


class SqlQueue(SqlStore):
    """The durable queue over the rules above, for either dialect."""

    async def enqueue(
        self,
        activation: Activation,
        args: Mapping[str, Any],
        not_before: float,
        *,
        backlog: int | None = None,
        owner: int | None = None,
    ) -> bool:
        """One call: `enqueue_all` of one."""
        owners = None if owner is None else {activation.function: owner}
        return await self.enqueue_all(
            [(activation, args)], not_before, backlog=backlog, owners=owners
        )

    async def enqueue_all(
        self,
        calls: Sequence[tuple[Activation, Mapping[str, Any]]],
        not_before: float,
        *,
        backlog: int | None = None,
        owners: Mapping[str, int] | None = None,
    ) -> bool:
        """`enqueue_steps` in one transaction."""
        steps = enqueue_steps(self.dialect, calls, not_before, backlog, owners or {})
        return await self._steps(steps)

    async def queue_backlog(self, tenant: str) -> int:
        """Counted through the `queue_fair` index."""
        return int(scalar(await self._once(query(_BACKLOG, tenant))))

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
        """`claim_steps` in one transaction."""
        by = Claimant(owner, lease_s, worker, grace_s)
        return await self._steps(claim_steps(self.dialect, now, limit, by, skip))

    async def renew(self, owner: str, activation_ids: Sequence[str], until: float) -> None:
        """One statement for every lease of `owner`'s named here."""
        if activation_ids:
            sql = _RENEW.format(ids=self.dialect.in_list("activation_id", 3))
            await self._once(command(sql, until, owner, list(activation_ids)))

    async def mark_worker_alive(self, worker: int, now: float) -> None:
        """One upsert of the worker's last sign of life."""
        await self._once(command(_ALIVE, worker, now))

    async def finish_attempt(
        self,
        activation: Activation,
        usage: Mapping[str, Any] | None,
        retry_at: float | None,
        *,
        owner: str | None = None,
    ) -> None:
        """`finish_steps` in one transaction."""
        await self._steps(finish_steps(self.dialect, activation, usage, retry_at, owner))

    async def defer(
        self, activation_id: str, not_before: float, *, owner: str | None = None
    ) -> None:
        """`defer_steps` in one transaction."""
        await self._steps(defer_steps(self.dialect, activation_id, not_before, owner))

    async def requeue_running(self, owner: str = "") -> int:
        """`requeue_steps` in one transaction."""
        return await self._steps(requeue_steps(self.dialect, owner))

    async def queue_depth(self) -> int:
        """Every row of the queue is a call not yet finished."""
        return int(scalar(await self._once(query("SELECT count(*) FROM queue"))))

    async def next_due(self, worker: int | None = None) -> float | None:
        """The smallest `not_before` of the queued calls `worker` owns or nobody does
        (a silent owner's are found by the dispatcher's regular poll)."""
        due = scalar(await self._once(query(_NEXT_DUE, worker)))
        return None if due is None else float(due)
