"""Tenant limits and dropped-event counts in SQL, for both dialects."""

from __future__ import annotations

from typing import Any

from invoker.store.sql.rows import first, from_row, scalar
from invoker.store.sql.statements import SqlStore, command, query
from invoker.tenant_limits import TenantLimits

_OF_TENANT = (
    "SELECT l.concurrency, l.rate_per_s, l.burst, l.backlog FROM tenants t "
    "LEFT JOIN tenant_limits l ON l.tenant = t.name WHERE t.name = ?1"
)
# Through `tenants`: nothing is stored for a tenant that does not exist.
_PUT = (
    "INSERT INTO tenant_limits (tenant, concurrency, rate_per_s, burst, backlog, updated) "
    "SELECT name, ?2, ?3, ?4, ?5, ?6 FROM tenants WHERE name = ?1 "
    "ON CONFLICT (tenant) DO UPDATE SET concurrency = excluded.concurrency, "
    "rate_per_s = excluded.rate_per_s, burst = excluded.burst, "
    "backlog = excluded.backlog, updated = excluded.updated"
)
_DROPPED = (
    "INSERT INTO tenant_limits (tenant, dropped_events, updated) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (tenant) DO UPDATE SET "
    "dropped_events = tenant_limits.dropped_events + excluded.dropped_events"
)


def _limits_from_row(row: Any) -> TenantLimits:
    return from_row(TenantLimits, row)


class SqlLimits(SqlStore):
    """Tenant limits, for either dialect."""

    async def get_tenant_limits(self, tenant: str) -> TenantLimits | None:
        """Joined to `tenants`, so an unknown tenant reads as None, not as defaults."""
        row = first(await self._once(query(_OF_TENANT, tenant)))
        return None if row is None else _limits_from_row(row)

    async def list_tenant_limits(self) -> dict[str, TenantLimits]:
        """Every row an admin (or a dropped event) wrote."""
        done = await self._once(query("SELECT * FROM tenant_limits"))
        return {r["tenant"]: _limits_from_row(r) for r in done.rows}

    async def put_tenant_limits(self, tenant: str, limits: TenantLimits, now: float) -> bool:
        """One upsert, through `tenants`."""
        n = limits
        args = (tenant, n.concurrency, n.rate_per_s, n.burst, n.backlog, float(now))
        return (await self._once(command(_PUT, *args))).count == 1

    async def add_dropped_events(self, tenant: str, count: int, now: float) -> None:
        """One upsert adding to the count."""
        await self._once(command(_DROPPED, tenant, count, float(now)))

    async def dropped_events(self, tenant: str) -> int:
        """Zero for a tenant none were dropped for."""
        sql = "SELECT dropped_events FROM tenant_limits WHERE tenant = ?1"
        found = scalar(await self._once(query(sql, tenant)))
        return 0 if found is None else int(found)
