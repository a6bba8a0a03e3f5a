"""The SQLite store's tenants and API keys: creation, key rotation, deletion.

Mixed into `SqliteStore` (which provides `_run`: one transaction on the store's thread).
A tenant has one or more keys in `tenant_keys`, each stored as its SHA-256 only;
`tenants.key_hash` keeps the first key's hash for stores made before rotation existed and is
never read to authenticate.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from invoker.store.lifecycle import (
    MAX_KEYS_PER_TENANT,
    DeletedTenant,
    KeyInfo,
    LastKeyError,
    TenantInfo,
    TooManyKeysError,
    usage_tombstone,
)

T = TypeVar("T")

TENANTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_keys (
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    PRIMARY KEY (tenant, key_id)
);
CREATE TABLE IF NOT EXISTS store_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO tenant_keys (tenant, key_id, key_hash, created)
    SELECT name, 'k' || substr(key_hash, 1, 15), key_hash, created FROM tenants t
    WHERE NOT EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant = t.name);
"""
"""Run on open: the tables, and a key row for each tenant made before `tenant_keys`."""

# Everything a tenant owns, by table (each has a `tenant` column). Usage records are not
# here: they are the provider's books and outlive the tenant (`usage_tombstone`).
OWNED_TABLES = (
    "tenant_keys",
    "functions",
    "keepalive",
    "activations",
    "queue",
    "tenant_limits",
    "triggers",
    "rules",
)


def new_key_id() -> str:
    """A key's public id: random, so it says nothing of the key."""
    return "k" + secrets.token_hex(8)


def purge_tenant(db: sqlite3.Connection, tenant: str, now: float) -> None:
    """Delete every row the tenant owns, inside the caller's transaction.

    Run on deletion and again when a tenant of the same name is created: a call that was
    still running when its tenant went may record its activation afterwards, and the new
    tenant must not see it.
    """
    for table in OWNED_TABLES:
        db.execute(f"DELETE FROM {table} WHERE tenant = ?", (tenant,))
    db.execute("DELETE FROM blobs WHERE sha256 NOT IN (SELECT code_sha256 FROM functions)")
    db.execute(
        "UPDATE usage SET tenant = ? WHERE tenant = ?", (usage_tombstone(tenant, now), tenant)
    )


def _keys(db: sqlite3.Connection, tenant: str) -> list[KeyInfo]:
    rows = db.execute(
        "SELECT key_id, created FROM tenant_keys WHERE tenant = ? ORDER BY created, key_id",
        (tenant,),
    )
    return [KeyInfo(key_id=r["key_id"], created=r["created"]) for r in rows]


class SqliteTenants:
    """Tenants, keys and the store's secrets; mixed into `SqliteStore`."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's

    async def create_tenant(self, name: str, key_hash: str) -> bool:
        """Add a tenant with its first key; False when the name (or the key) is taken."""

        def q(db: sqlite3.Connection) -> bool:
            now = time.time()
            cur = db.execute(
                "INSERT OR IGNORE INTO tenants (name, key_hash, created) VALUES (?, ?, ?)",
                (name, key_hash, now),
            )
            if cur.rowcount != 1:
                return False
            purge_tenant(db, name, now)  # whatever a deleted namesake left behind
            cur = db.execute(
                "INSERT OR IGNORE INTO tenant_keys (tenant, key_id, key_hash, created) "
                "VALUES (?, ?, ?, ?)",
                (name, new_key_id(), key_hash, now),
            )
            if cur.rowcount != 1:  # another tenant's key: undo the tenant too
                db.execute("DELETE FROM tenants WHERE name = ?", (name,))
                return False
            return True

        return await self._run(q)

    async def tenant_for_key(self, key_hash: str) -> str | None:
        """The tenant whose API key (any of its keys) hashes to `key_hash`."""

        def q(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT tenant FROM tenant_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            return None if row is None else str(row["tenant"])

        return await self._run(q)

    async def tenant_exists(self, name: str) -> bool:
        """Whether the tenant exists (it may have been deleted)."""

        def q(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT 1 FROM tenants WHERE name = ?", (name,)).fetchone()
            return row is not None

        return await self._run(q)

    async def list_tenants(self) -> list[TenantInfo]:
        """Every tenant, by name."""

        def q(db: sqlite3.Connection) -> list[TenantInfo]:
            rows = db.execute("SELECT name, created FROM tenants ORDER BY name")
            return [TenantInfo(name=r["name"], created=float(r["created"])) for r in rows]

        return await self._run(q)

    async def delete_tenant(self, name: str, now: float) -> DeletedTenant | None:
        """Delete a tenant and everything it owns, in one transaction; None if there is none.

        Its usage records stay (filed under `usage_tombstone`); code blobs no other function
        uses go.
        """

        def q(db: sqlite3.Connection) -> DeletedTenant | None:
            if db.execute("SELECT 1 FROM tenants WHERE name = ?", (name,)).fetchone() is None:
                return None
            hashes = db.execute("SELECT key_hash FROM tenant_keys WHERE tenant = ?", (name,))
            functions = db.execute("SELECT name FROM functions WHERE tenant = ?", (name,))
            deleted = DeletedTenant(
                key_hashes=tuple(r[0] for r in hashes), functions=tuple(r[0] for r in functions)
            )
            db.execute("DELETE FROM tenants WHERE name = ?", (name,))
            purge_tenant(db, name, now)
            return deleted

        return await self._run(q)

    async def add_key(self, tenant: str, key_hash: str, now: float) -> KeyInfo | None:
        """Give the tenant another key; None when there is no such tenant.

        Raises TooManyKeysError at `MAX_KEYS_PER_TENANT` keys.
        """

        def q(db: sqlite3.Connection) -> KeyInfo | None:
            if db.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone() is None:
                return None
            if len(_keys(db, tenant)) >= MAX_KEYS_PER_TENANT:
                raise TooManyKeysError(tenant)
            info = KeyInfo(key_id=new_key_id(), created=now)
            db.execute(
                "INSERT INTO tenant_keys (tenant, key_id, key_hash, created) VALUES (?, ?, ?, ?)",
                (tenant, info.key_id, key_hash, now),
            )
            return info

        return await self._run(q)

    async def list_keys(self, tenant: str) -> list[KeyInfo]:
        """The tenant's keys (ids and created times), oldest first."""
        return await self._run(lambda db: _keys(db, tenant))

    async def revoke_key(self, tenant: str, key_id: str) -> str | None:
        """Revoke one of the tenant's keys: its hash (to forget in caches), None if unknown.

        Raises LastKeyError rather than leave the tenant without a key.
        """

        def q(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT key_hash FROM tenant_keys WHERE tenant = ? AND key_id = ?",
                (tenant, key_id),
            ).fetchone()
            if row is None:
                return None
            if len(_keys(db, tenant)) <= 1:
                raise LastKeyError(tenant)
            db.execute("DELETE FROM tenant_keys WHERE tenant = ? AND key_id = ?", (tenant, key_id))
            # The legacy column must not keep a revoked key's hash (unique, so not NULL).
            db.execute(
                "UPDATE tenants SET key_hash = ? WHERE name = ? AND key_hash = ?",
                (f"revoked:{tenant}:{key_id}", tenant, row["key_hash"]),
            )
            return str(row["key_hash"])

        return await self._run(q)

    async def secret(self, name: str) -> bytes:
        """A random 32-byte secret by name, made on first use, the same for every gateway."""

        def q(db: sqlite3.Connection) -> bytes:
            db.execute(
                "INSERT OR IGNORE INTO store_secrets (name, value) VALUES (?, ?)",
                (name, secrets.token_hex(32)),
            )
            row = db.execute("SELECT value FROM store_secrets WHERE name = ?", (name,)).fetchone()
            return bytes.fromhex(row["value"])

        return await self._run(q)
