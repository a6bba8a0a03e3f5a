"""The PostgreSQL store's tenants and API keys: creation, key rotation, deletion.

Mixed into `PostgresStore` (which provides `_tx`, `_conn` and `_blob_lock`). Same semantics
as `sqlite_tenants.py`; what several gateways at once need: key changes lock the tenant's
row (two revocations at once cannot both pass the last-key check), and deleting a tenant's
functions takes the blob lock exclusively, as `delete_function` does.
"""

from __future__ import annotations

import secrets
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from invoker.store.lifecycle import (
    MAX_KEYS_PER_TENANT,
    DeletedTenant,
    KeyInfo,
    LastKeyError,
    TenantInfo,
    TooManyKeysError,
    usage_tombstone,
)
from invoker.store.sqlite_tenants import OWNED_TABLES, new_key_id

LIFECYCLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_keys (
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, key_id)
);
CREATE TABLE IF NOT EXISTS store_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO tenant_keys (tenant, key_id, key_hash, created)
    SELECT name, 'k' || substr(key_hash, 1, 15), key_hash, created FROM tenants t
    WHERE NOT EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant = t.name)
    ON CONFLICT DO NOTHING;
ALTER TABLE activations ADD COLUMN IF NOT EXISTS size BIGINT;
CREATE INDEX IF NOT EXISTS activations_by_time ON activations ((COALESCE(start, "end")));
"""
"""Run on open, after the main schema: key and secret tables, activation sizes and times."""


class _KeyTaken(Exception):
    """The first key of a new tenant is another tenant's: roll the tenant back."""


async def purge_tenant(con: Any, tenant: str, now: float, blob_lock: int) -> None:
    """Delete every row the tenant owns, inside the caller's transaction (see SQLite's)."""
    await con.execute("SELECT pg_advisory_xact_lock($1)", blob_lock)
    for table in OWNED_TABLES:
        await con.execute(f"DELETE FROM {table} WHERE tenant = $1", tenant)
    await con.execute(
        "DELETE FROM blobs b WHERE NOT EXISTS "
        "(SELECT 1 FROM functions f WHERE f.code_sha256 = b.sha256)"
    )
    await con.execute(
        "UPDATE usage SET tenant = $1 WHERE tenant = $2", usage_tombstone(tenant, now), tenant
    )


async def _keys(con: Any, tenant: str) -> list[KeyInfo]:
    rows = await con.fetch(
        "SELECT key_id, created FROM tenant_keys WHERE tenant = $1 ORDER BY created, key_id",
        tenant,
    )
    return [KeyInfo(key_id=r["key_id"], created=r["created"]) for r in rows]


async def _lock_tenant(con: Any, tenant: str) -> bool:
    """Lock the tenant's row to the end of the transaction; False if there is none."""
    found = await con.fetchval("SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE", tenant)
    return found is not None


class PostgresTenants:
    """Tenants, keys and the store's secrets; mixed into `PostgresStore`."""

    _blob_lock: int

    def _tx(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore's

    def _conn(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore's

    async def create_tenant(self, name: str, key_hash: str) -> bool:
        """Add a tenant with its first key; False when the name (or the key) is taken."""
        now = time.time()
        try:
            async with self._tx() as con:
                inserted = await con.fetchval(
                    "INSERT INTO tenants (name, key_hash, created) VALUES ($1, $2, $3) "
                    "ON CONFLICT DO NOTHING RETURNING name",
                    name,
                    key_hash,
                    now,
                )
                if inserted is None:
                    return False
                await purge_tenant(con, name, now, self._blob_lock)
                added = await con.fetchval(
                    "INSERT INTO tenant_keys (tenant, key_id, key_hash, created) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING key_id",
                    name,
                    new_key_id(),
                    key_hash,
                    now,
                )
                if added is None:
                    raise _KeyTaken(name)
        except _KeyTaken:
            return False
        return True

    async def tenant_for_key(self, key_hash: str) -> str | None:
        """The tenant whose API key (any of its keys) hashes to `key_hash`."""
        async with self._conn() as con:
            name = await con.fetchval(
                "SELECT tenant FROM tenant_keys WHERE key_hash = $1", key_hash
            )
        return None if name is None else str(name)

    async def tenant_exists(self, name: str) -> bool:
        """Whether the tenant exists (it may have been deleted)."""
        async with self._conn() as con:
            return await con.fetchval("SELECT 1 FROM tenants WHERE name = $1", name) is not None

    async def list_tenants(self) -> list[TenantInfo]:
        """Every tenant, by name."""
        async with self._conn() as con:
            rows = await con.fetch("SELECT name, created FROM tenants ORDER BY name")
        return [TenantInfo(name=r["name"], created=float(r["created"])) for r in rows]

    async def delete_tenant(self, name: str, now: float) -> DeletedTenant | None:
        """Delete a tenant and everything it owns, in one transaction; None if there is none."""
        async with self._tx() as con:
            if not await _lock_tenant(con, name):
                return None
            hashes = await con.fetch("SELECT key_hash FROM tenant_keys WHERE tenant = $1", name)
            functions = await con.fetch("SELECT name FROM functions WHERE tenant = $1", name)
            await con.execute("DELETE FROM tenants WHERE name = $1", name)
            await purge_tenant(con, name, now, self._blob_lock)
        return DeletedTenant(
            key_hashes=tuple(r[0] for r in hashes), functions=tuple(r[0] for r in functions)
        )

    async def add_key(self, tenant: str, key_hash: str, now: float) -> KeyInfo | None:
        """Give the tenant another key; None when there is no such tenant.

        Raises TooManyKeysError at `MAX_KEYS_PER_TENANT` keys.
        """
        async with self._tx() as con:
            if not await _lock_tenant(con, tenant):
                return None
            if len(await _keys(con, tenant)) >= MAX_KEYS_PER_TENANT:
                raise TooManyKeysError(tenant)
            info = KeyInfo(key_id=new_key_id(), created=now)
            await con.execute(
                "INSERT INTO tenant_keys (tenant, key_id, key_hash, created) "
                "VALUES ($1, $2, $3, $4)",
                tenant,
                info.key_id,
                key_hash,
                now,
            )
        return info

    async def list_keys(self, tenant: str) -> list[KeyInfo]:
        """The tenant's keys (ids and created times), oldest first."""
        async with self._conn() as con:
            return await _keys(con, tenant)

    async def revoke_key(self, tenant: str, key_id: str) -> str | None:
        """Revoke one of the tenant's keys: its hash (to forget in caches), None if unknown.

        Raises LastKeyError rather than leave the tenant without a key.
        """
        async with self._tx() as con:
            if not await _lock_tenant(con, tenant):
                return None
            key_hash = await con.fetchval(
                "SELECT key_hash FROM tenant_keys WHERE tenant = $1 AND key_id = $2",
                tenant,
                key_id,
            )
            if key_hash is None:
                return None
            if len(await _keys(con, tenant)) <= 1:
                raise LastKeyError(tenant)
            await con.execute(
                "DELETE FROM tenant_keys WHERE tenant = $1 AND key_id = $2", tenant, key_id
            )
            await con.execute(
                "UPDATE tenants SET key_hash = $1 WHERE name = $2 AND key_hash = $3",
                f"revoked:{tenant}:{key_id}",
                tenant,
                key_hash,
            )
        return str(key_hash)

    async def secret(self, name: str) -> bytes:
        """A random 32-byte secret by name, made on first use, the same for every gateway."""
        async with self._conn() as con:
            await con.execute(
                "INSERT INTO store_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                name,
                secrets.token_hex(32),
            )
            value = await con.fetchval("SELECT value FROM store_secrets WHERE name = $1", name)
        return bytes.fromhex(value)
