"""The store's node leases: which nodes (VMs) were up when, for the provider's economics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class NodeLease:
    """One node (VM) and the time it was provisioned: what the provider pays for."""

    id: str
    flavor: str
    vcpu: float
    memory_mb: int
    price_per_hour: str  # a decimal string, exact
    up_at: float
    down_at: float | None = None


class NodeLeaseStore(Protocol):
    """Every node's lease, from provisioning to release."""

    async def save_node_lease(self, lease: NodeLease) -> None:
        """Insert or update a node's lease (set `down_at` when it is released)."""
        ...

    async def node_leases(self, start_from: float, start_to: float) -> list[NodeLease]:
        """Leases that overlap [start_from, start_to)."""
        ...
