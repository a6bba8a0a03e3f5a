"""What the store's tenant, key and activation-lifecycle methods take and return. Pure.

Shared by both dialects (`sqlite_tenants.py`, `sqlite_activations.py` and their Postgres
twins): the value types, the rule that fits activations into a byte budget, and how the
usage records of a deleted tenant are filed.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from invoker.api import Activation

MAX_KEYS_PER_TENANT = 10
"""A tenant holds at most this many API keys at once (rotation needs two)."""

RECORD_OVERHEAD_BYTES = 1024
"""What an activation's JSON costs in a listing besides its result, error and logs."""

DELETE_BATCH = 500
"""Activations deleted per transaction: a big delete never holds the store for long."""


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


class Removal(enum.StrEnum):
    """The outcome of deleting one activation."""

    DELETED = "deleted"
    MISSING = "missing"  # no such activation in the tenant
    QUEUED = "queued"  # an async call still queued or running: it is not history yet


@dataclass(frozen=True)
class ActivationPage:
    """One page of a tenant's activations, newest first.

    `next_seq` is where the next page starts (the records with a smaller `seq`), None when
    this page reaches the end; `truncated` is True when the byte budget, not the count
    limit, ended the page. `size` is what its results, errors and logs take, in bytes.
    """

    activations: list[Activation]
    next_seq: int | None
    truncated: bool
    size: int = 0


def activation_size(result_json: str | None, logs_json: str, error: str | None) -> int:
    """The bytes an activation's result, logs and error take as stored (and as listed).

    `json.dumps` output is ASCII, so its length is its size in bytes.
    """
    error_bytes = 0 if error is None else len(error.encode("utf-8", "replace"))
    return len(result_json or "") + len(logs_json) + error_bytes


def dumped_size(activation: Activation) -> int:
    """`activation_size` of an activation not yet serialised (for tests and callers)."""
    result = None if activation.result is None else json.dumps(activation.result)
    return activation_size(result, json.dumps(activation.logs), activation.error)


def fit_page(sizes: Sequence[int], limit: int, max_bytes: int) -> tuple[int, bool]:
    """How many of the newest records (their sizes, newest first) one page holds.

    Records go in while the page stays within `max_bytes` (each costing its size plus
    `RECORD_OVERHEAD_BYTES`) and `limit`. A page always holds at least one record, so
    paging always advances: a record larger than the budget comes alone. Returns the
    count and whether the budget (rather than the limit or the end) stopped the page.
    """
    total = 0
    for count, size in enumerate(sizes[:limit]):
        cost = max(0, size) + RECORD_OVERHEAD_BYTES
        if count > 0 and total + cost > max_bytes:
            return count, True
        total += cost
    return min(len(sizes), limit), False


def page_end(seqs: Sequence[int], count: int) -> int | None:
    """The cursor after a page of `count` of these records: None when none are left."""
    return seqs[count - 1] if 0 < count < len(seqs) else None


def usage_tombstone(tenant: str, now: float) -> str:
    """The `tenant` column a deleted tenant's usage records are filed under.

    The records themselves stay unchanged (the provider's books: `GET /v1/admin/billing`
    still shows them under the tenant's name); only the column that a tenant's own bill
    selects by moves, so a tenant later created with the same name never sees them. `#`
    is not allowed in tenant names: no live tenant can match.
    """
    return f"{tenant}#deleted-{int(now)}"


class LifecycleStore(Protocol):
    """The store's part for tenants' lifecycle, API keys and activation history.

    `base.Store` extends it; both dialects implement it (`sqlite_tenants.py`,
    `sqlite_activations.py`, `postgres_tenants.py`, `postgres_activations.py`).
    """

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

    async def list_activations_page(
        self,
        tenant: str,
        function: str | None,
        limit: int,
        before_seq: int | None,
        max_bytes: int,
    ) -> ActivationPage:
        """Newest first, those with `seq < before_seq`: at most `limit`, within `max_bytes`
        of results, errors and logs (`fit_page`; at least one record)."""
        ...

    async def delete_activation(self, tenant: str, activation_id: str) -> Removal:
        """Delete one activation of the tenant; a call still queued or running stays."""
        ...

    async def delete_activations(
        self, tenant: str | None, function: str | None, before: float
    ) -> int:
        """Delete the activations that started (or, unstarted, ended) before `before`, of one
        tenant (None: all) and optionally one function, except calls still queued or
        running; in batches. Usage records stay. Returns how many went."""
        ...

    async def reclaim_space(self) -> int:
        """Give the space deleted rows freed back to the file system where the backend
        needs telling (SQLite); returns the pages that were free."""
        ...
