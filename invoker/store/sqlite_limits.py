"""The SQLite store's per-tenant parts: the fair claim order, backlogs and tenant limits.

Kept apart from `sqlite.py`, which uses the helpers inside its own transactions and
takes the limit methods from `SqliteLimits`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from invoker.fairness import (
    Ready,
    candidates_per_tenant,
    candidates_sql,
    fair_order,
    running_sql,
)
from invoker.tenant_limits import TenantLimits

T = TypeVar("T")

_CANDIDATES = candidates_sql("?1", "?2", lateral=False)
_RUNNING = running_sql("?1")
_LIMITS_OF_TENANT = (
    "SELECT l.concurrency, l.rate_per_s, l.burst, l.backlog FROM tenants t "
    "LEFT JOIN tenant_limits l ON l.tenant = t.name WHERE t.name = ?"
)


def fair_due(
    db: sqlite3.Connection, now: float, limit: int, skip: Collection[str] = ()
) -> list[Any]:
    """Up to `limit` claimable queue rows, in the fair order (`invoker.fairness`).

    Runs inside the claim's transaction on the store's one thread, so nothing changes
    between choosing the rows and claiming them.
    """
    ready = [
        Ready(r["activation_id"], r["tenant"], r["not_before"], r["created"])
        for r in db.execute(_CANDIDATES, (now, candidates_per_tenant(limit)))
    ]
    if not ready:
        return []
    running = {r["tenant"]: int(r["n"]) for r in db.execute(_RUNNING, (now,))}
    chosen = [c.activation_id for c in fair_order(ready, running, skip)[:limit]]
    if not chosen:
        return []
    marks = ",".join("?" * len(chosen))
    rows = {
        r["activation_id"]: r
        for r in db.execute(f"SELECT * FROM queue WHERE activation_id IN ({marks})", chosen)
    }
    return [rows[aid] for aid in chosen]


def backlog_of(db: sqlite3.Connection, tenant: str) -> int:
    """The tenant's async calls queued or running (every row of the queue is one)."""
    row = db.execute(
        "SELECT count(*) FROM queue WHERE state IN ('queued', 'running') AND tenant = ?", (tenant,)
    ).fetchone()
    return int(row[0])


def has_room(db: sqlite3.Connection, tenant: str, adding: int, backlog: int | None) -> bool:
    """Would `adding` more calls keep the tenant within `backlog` (None: no limit)?"""
    return backlog is None or backlog_of(db, tenant) + adding <= backlog


def _limits_from_row(row: Any) -> TenantLimits:
    return TenantLimits(
        concurrency=row["concurrency"],
        rate_per_s=row["rate_per_s"],
        burst=row["burst"],
        backlog=row["backlog"],
    )


class SqliteLimits:
    """Tenant limits and backlogs; mixed into `SqliteStore`, which provides `_run`."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's

    async def queue_backlog(self, tenant: str) -> int:
        """The tenant's async calls queued or running."""
        return await self._run(lambda db: backlog_of(db, tenant))

    async def get_tenant_limits(self, tenant: str) -> TenantLimits | None:
        """What an admin set for the tenant (fields None: the defaults); None: no such tenant."""

        def q(db: sqlite3.Connection) -> TenantLimits | None:
            row = db.execute(_LIMITS_OF_TENANT, (tenant,)).fetchone()
            return None if row is None else _limits_from_row(row)

        return await self._run(q)

    async def list_tenant_limits(self) -> dict[str, TenantLimits]:
        """Every tenant's limits that an admin set."""

        def q(db: sqlite3.Connection) -> dict[str, TenantLimits]:
            rows = db.execute("SELECT * FROM tenant_limits").fetchall()
            return {r["tenant"]: _limits_from_row(r) for r in rows}

        return await self._run(q)

    async def put_tenant_limits(self, tenant: str, limits: TenantLimits, now: float) -> bool:
        """Replace the tenant's limits; False (nothing stored) when there is no such tenant."""

        def q(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "INSERT INTO tenant_limits (tenant, concurrency, rate_per_s, burst, backlog, "
                "updated) SELECT name, ?, ?, ?, ?, ? FROM tenants WHERE name = ? "
                "ON CONFLICT(tenant) DO UPDATE SET concurrency = excluded.concurrency, "
                "rate_per_s = excluded.rate_per_s, burst = excluded.burst, "
                "backlog = excluded.backlog, updated = excluded.updated",
                (
                    limits.concurrency,
                    limits.rate_per_s,
                    limits.burst,
                    limits.backlog,
                    now,
                    tenant,
                ),
            )
            return cur.rowcount == 1

        return await self._run(q)

    async def add_dropped_events(self, tenant: str, count: int, now: float) -> None:
        """Count trigger events dropped because the tenant's backlog was full."""

        def q(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO tenant_limits (tenant, dropped_events, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(tenant) DO UPDATE SET "
                "dropped_events = dropped_events + excluded.dropped_events",
                (tenant, count, now),
            )

        await self._run(q)

    async def dropped_events(self, tenant: str) -> int:
        """Trigger events dropped so far because the tenant's backlog was full."""

        def q(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT dropped_events FROM tenant_limits WHERE tenant = ?", (tenant,)
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(q)
