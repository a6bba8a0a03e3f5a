"""The PostgreSQL store's per-tenant parts: the fair claim order, backlogs and tenant limits.

Kept apart from `postgres.py`, which uses the helpers inside its own transactions and
takes the limit methods from `PostgresLimits`.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from typing import Any

from invoker.fairness import (
    Ready,
    candidates_per_tenant,
    candidates_sql,
    fair_order,
    running_sql,
)
from invoker.tenant_limits import TenantLimits

_CANDIDATES = candidates_sql("$1::float8", "$2", lateral=True)
_RUNNING = running_sql("$1::float8")

# The chosen calls, locked in the fair order: LockRows sits between the sort and the limit,
# so rows another gateway holds are skipped (not waited for) and the next ones fill in.
# The due condition is checked again on the locked row: a call claimed and committed by
# another gateway since the candidates were read is no longer due.
_LOCK_CHOSEN = """
SELECT * FROM queue
WHERE activation_id = ANY($2::text[])
  AND ((state = 'queued' AND not_before <= $1) OR (state = 'running' AND lease_until < $1))
ORDER BY array_position($2::text[], activation_id)
LIMIT $3 FOR UPDATE SKIP LOCKED
"""

# Every row of the queue is queued or running; naming both lets `queue_fair` answer.
_BACKLOG_COUNT = "SELECT count(*) FROM queue WHERE state IN ('queued', 'running') AND tenant = $1"

# One lock per tenant (and schema: tests share a database), held to the end of the
# enqueueing transaction, so concurrent enqueues of one tenant cannot both pass the count.
_BACKLOG_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "'nimbus.backlog:' || current_schema() || ':' || $1, 0))"
)


async def fair_due(con: Any, now: float, limit: int, skip: Collection[str] = ()) -> list[Any]:
    """Lock and return up to `limit` claimable queue rows, in the fair order."""
    rows = await con.fetch(_CANDIDATES, float(now), candidates_per_tenant(limit))
    if not rows:
        return []
    ready = [Ready(r["activation_id"], r["tenant"], r["not_before"], r["created"]) for r in rows]
    running = {r["tenant"]: int(r["n"]) for r in await con.fetch(_RUNNING, float(now))}
    order = [c.activation_id for c in fair_order(ready, running, skip)]
    if not order:
        return []
    return list(await con.fetch(_LOCK_CHOSEN, float(now), order, limit))


async def has_room(con: Any, tenant: str, adding: int, backlog: int | None) -> bool:
    """Would `adding` more calls keep the tenant within `backlog` (None: no limit)?

    Call inside the enqueueing transaction: it takes the tenant's backlog lock.
    """
    if backlog is None:
        return True
    await con.execute(_BACKLOG_LOCK, tenant)
    queued = await con.fetchval(_BACKLOG_COUNT, tenant)
    return int(queued) + adding <= backlog


def _limits_from_row(row: Any) -> TenantLimits:
    return TenantLimits(
        concurrency=row["concurrency"],
        rate_per_s=row["rate_per_s"],
        burst=row["burst"],
        backlog=row["backlog"],
    )


class PostgresLimits:
    """Tenant limits and backlogs; mixed into `PostgresStore`, which provides `_conn`."""

    def _conn(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore's

    async def queue_backlog(self, tenant: str) -> int:
        """The tenant's async calls queued or running."""
        async with self._conn() as con:
            return int(await con.fetchval(_BACKLOG_COUNT, tenant))

    async def get_tenant_limits(self, tenant: str) -> TenantLimits | None:
        """What an admin set for the tenant (fields None: the defaults); None: no such tenant."""
        async with self._conn() as con:
            row = await con.fetchrow(
                "SELECT l.concurrency, l.rate_per_s, l.burst, l.backlog FROM tenants t "
                "LEFT JOIN tenant_limits l ON l.tenant = t.name WHERE t.name = $1",
                tenant,
            )
        return None if row is None else _limits_from_row(row)

    async def list_tenant_limits(self) -> dict[str, TenantLimits]:
        """Every tenant's limits that an admin set."""
        async with self._conn() as con:
            rows = await con.fetch("SELECT * FROM tenant_limits")
        return {r["tenant"]: _limits_from_row(r) for r in rows}

    async def put_tenant_limits(self, tenant: str, limits: TenantLimits, now: float) -> bool:
        """Replace the tenant's limits; False (nothing stored) when there is no such tenant."""
        async with self._conn() as con:
            stored = await con.fetchval(
                "INSERT INTO tenant_limits (tenant, concurrency, rate_per_s, burst, backlog, "
                "updated) SELECT name, $2, $3, $4, $5, $6 FROM tenants WHERE name = $1 "
                "ON CONFLICT (tenant) DO UPDATE SET concurrency = excluded.concurrency, "
                "rate_per_s = excluded.rate_per_s, burst = excluded.burst, "
                "backlog = excluded.backlog, updated = excluded.updated RETURNING tenant",
                tenant,
                limits.concurrency,
                limits.rate_per_s,
                limits.burst,
                limits.backlog,
                float(now),
            )
        return stored is not None

    async def add_dropped_events(self, tenant: str, count: int, now: float) -> None:
        """Count trigger events dropped because the tenant's backlog was full."""
        async with self._conn() as con:
            await con.execute(
                "INSERT INTO tenant_limits (tenant, dropped_events, updated) VALUES ($1, $2, $3) "
                "ON CONFLICT (tenant) DO UPDATE SET "
                "dropped_events = tenant_limits.dropped_events + excluded.dropped_events",
                tenant,
                count,
                float(now),
            )

    async def dropped_events(self, tenant: str) -> int:
        """Trigger events dropped so far because the tenant's backlog was full."""
        async with self._conn() as con:
            found = await con.fetchval(
                "SELECT dropped_events FROM tenant_limits WHERE tenant = $1", tenant
            )
        return 0 if found is None else int(found)
