"""The store's keep-alive state: what a keep-alive policy learned, so a restart keeps it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

KeepAliveState = tuple[str, str, Mapping[str, Any]]
"""(tenant, function, the policy's state of that function as JSON-able values)."""


class KeepAliveStore(Protocol):
    """Snapshots of a keep-alive policy's per-function state, by policy name."""

    async def save_keepalive(
        self, policy: str, states: Sequence[KeepAliveState], now: float
    ) -> None:
        """Keep (tenant, function, state) snapshots of `policy`, replacing older ones."""
        ...

    async def load_keepalive(self, policy: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Every (tenant, function, state) snapshot of `policy`."""
        ...
