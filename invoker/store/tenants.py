"""The store's tenants, their API keys and the platform's shared secrets.

A tenant owns keys (stored only as SHA-256 hashes), functions, activations, queued calls,
triggers, rules, limits and keep-alive state; deleting it removes all of that at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

MAX_KEYS_PER_TENANT = 10
"""A tenant holds at most this many API keys at once (rotation needs two)."""


@dataclass(frozen=True)
class TenantInfo:
    """A tenant as the admin sees it: never its keys."""

    name: str
    created: float

    def to_json(self) -> dict[str, Any]:
        """As the API shows it."""
        return {"name": self.name, "created": self.created}


@dataclass(frozen=True)
class KeyInfo:
    """One of a tenant's API keys, without the key (which is stored only hashed)."""

    key_id: str
    created: float

    def to_json(self) -> dict[str, Any]:
        """As the API shows it."""
        return {"key_id": self.key_id, "created": self.created}


class LastKeyError(Exception):
    """Revoking this key would leave the tenant with no way to log in."""


class TooManyKeysError(Exception):
    """The tenant already holds `MAX_KEYS_PER_TENANT` keys."""


@dataclass(frozen=True)
class DeletedTenant:
    """What deleting a tenant removed that caches in front of the store may still hold."""

    key_hashes: tuple[str, ...]
    functions: tuple[str, ...]


def usage_tombstone(tenant: str, now: float) -> str:
    """The `tenant` column a deleted tenant's usage records are filed under.

    The records themselves stay unchanged (the provider's books: `GET /v1/admin/billing`
    still shows them under the tenant's name); only the column that a tenant's own bill
    selects by moves, so a tenant later created with the same name never sees them. `#`
    is not allowed in tenant names: no live tenant can match.
    """
    return f"{tenant}#deleted-{int(now)}"


class TenantStore(Protocol):
    """Tenants, their API keys, and secrets every gateway on the store shares."""

    async def create_tenant(self, name: str, key_hash: str) -> bool:
        """Add a tenant with its first key; False when the name (or the key) is taken."""
        ...

    async def tenant_for_key(self, key_hash: str) -> str | None:
        """The tenant whose API key (any of its keys) hashes to `key_hash`."""
        ...

    async def tenant_exists(self, name: str) -> bool:
        """Whether the tenant exists (it may have been deleted)."""
        ...

    async def list_tenants(self) -> list[TenantInfo]:
        """Every tenant, by name."""
        ...

    async def delete_tenant(self, name: str, now: float) -> DeletedTenant | None:
        """Delete a tenant and all it owns (keys, functions, unshared code, activations,
        queued calls, triggers, rules, limits, keep-alive state) at once; None if none.

        Its usage records stay, filed under `usage_tombstone` (the provider's
        books); a tenant later created with the same name starts empty.
        """
        ...

    async def add_key(self, tenant: str, key_hash: str, now: float) -> KeyInfo | None:
        """Another API key for the tenant; None without such a tenant.

        Raises `TooManyKeysError` at `MAX_KEYS_PER_TENANT`.
        """
        ...

    async def list_keys(self, tenant: str) -> list[KeyInfo]:
        """The tenant's keys (ids and created times, never hashes), oldest first."""
        ...

    async def revoke_key(self, tenant: str, key_id: str) -> str | None:
        """Remove a key: its hash, or None if the tenant has no such key.

        Raises `LastKeyError` instead of removing the tenant's last key.
        """
        ...

    async def secret(self, name: str) -> bytes:
        """A random 32-byte secret by name, made on first use, shared by every gateway."""
        ...
