"""Node leases in SQL, for both dialects."""

from __future__ import annotations

from invoker.store.node_leases import NodeLease
from invoker.store.sql.rows import from_row
from invoker.store.sql.statements import SqlStore, command, query

# A lease is written when its node comes up; later writes only record its release.
_SAVE = (
    "INSERT INTO node_leases (id, flavor, vcpu, memory_mb, price_per_hour, up_at, down_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET down_at = excluded.down_at"
)
_OVERLAPPING = (
    "SELECT * FROM node_leases WHERE up_at < ?2 AND (down_at IS NULL OR down_at > ?1) "
    "ORDER BY up_at"
)


class SqlNodeLeases(SqlStore):
    """Node leases, for either dialect."""

    async def save_node_lease(self, lease: NodeLease) -> None:
        """Insert, or record the release of the lease already stored."""
        n = lease
        down_at = None if n.down_at is None else float(n.down_at)
        args = (n.id, n.flavor, float(n.vcpu), n.memory_mb, n.price_per_hour, float(n.up_at))
        await self._once(command(_SAVE, *args, down_at))

    async def node_leases(self, start_from: float, start_to: float) -> list[NodeLease]:
        """By the time each node came up."""
        done = await self._once(query(_OVERLAPPING, float(start_from), float(start_to)))
        return [from_row(NodeLease, r) for r in done.rows]
