"""The store's per-tenant limits an admin sets, and the trigger events dropped past them.

`TenantLimits` (the value, and what None fields default to) is `invoker.tenant_limits`'.
"""

from __future__ import annotations

from typing import Protocol

from invoker.tenant_limits import TenantLimits


class TenantLimitStore(Protocol):
    """Limits an admin set per tenant (None fields: the platform default)."""

    async def get_tenant_limits(self, tenant: str) -> TenantLimits | None:
        """What an admin set for the tenant (fields None: defaults); None: no such tenant."""
        ...

    async def list_tenant_limits(self) -> dict[str, TenantLimits]:
        """Every tenant's limits that an admin set."""
        ...

    async def put_tenant_limits(self, tenant: str, limits: TenantLimits, now: float) -> bool:
        """Replace the tenant's limits; False (nothing stored) when there is no such tenant."""
        ...

    async def add_dropped_events(self, tenant: str, count: int, now: float) -> None:
        """Count trigger events dropped because the tenant's backlog was full."""
        ...

    async def dropped_events(self, tenant: str) -> int:
        """Trigger events dropped so far because the tenant's backlog was full."""
        ...
