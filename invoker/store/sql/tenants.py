"""Tenants and API keys in SQL, for both dialects: creation, key rotation, deletion.

A tenant has one or more keys in `tenant_keys`, each stored as its SHA-256 only;
`tenants.key_hash` keeps the first key's hash for stores made before rotation existed and
is never read to authenticate. Key changes lock the tenant's row (`Dialect.for_update`),
so two revocations at once cannot both pass the last-key check.
"""

from __future__ import annotations

import secrets
import time

from invoker.store.sql.functions import UNUSED_BLOBS
from invoker.store.sql.rows import scalar
from invoker.store.sql.statements import Dialect, SqlStore, Steps, command, each, query
from invoker.store.tenants import (
    MAX_KEYS_PER_TENANT,
    DeletedTenant,
    KeyInfo,
    LastKeyError,
    TenantInfo,
    TooManyKeysError,
    usage_tombstone,
)

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
    "function_versions",
    "function_aliases",
)
_ADD_TENANT = (
    "INSERT INTO tenants (name, key_hash, created) VALUES (?1, ?2, ?3) "
    "ON CONFLICT DO NOTHING RETURNING name"
)
_ADD_KEY = (
    "INSERT INTO tenant_keys (tenant, key_id, key_hash, created) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT DO NOTHING RETURNING key_id"
)
_KEYS = "SELECT key_id, created FROM tenant_keys WHERE tenant = ?1 ORDER BY created, key_id"
_KEY_HASH = "SELECT key_hash FROM tenant_keys WHERE tenant = ?1 AND key_id = ?2"
# The legacy column must not keep a revoked key's hash (unique, so not NULL).
_FORGET_HASH = "UPDATE tenants SET key_hash = ?1 WHERE name = ?2 AND key_hash = ?3"


def new_key_id() -> str:
    """A key's public id: random, so it says nothing of the key."""
    return "k" + secrets.token_hex(8)


def purge_steps(d: Dialect, tenant: str, now: float) -> Steps[None]:
    """Delete every row the tenant owns, inside the caller's transaction.

    Run on deletion and again when a tenant of the same name is created: a call that was
    still running when its tenant went may record its activation afterwards, and the new
    tenant must not see it.
    """
    yield from each(d.blob_lock(shared=False))
    for table in OWNED_TABLES:
        yield command(f"DELETE FROM {table} WHERE tenant = ?1", tenant)
    yield command(UNUSED_BLOBS)
    yield command(
        "UPDATE usage SET tenant = ?1 WHERE tenant = ?2", usage_tombstone(tenant, now), tenant
    )


def _locked(d: Dialect, tenant: str) -> Steps[bool]:
    """Whether the tenant exists, its row locked to the end of the transaction."""
    found = yield query(f"SELECT 1 FROM tenants WHERE name = ?1{d.for_update}", tenant)
    return bool(found.rows)


def _keys(tenant: str) -> Steps[list[KeyInfo]]:
    rows = (yield query(_KEYS, tenant)).rows
    return [KeyInfo(key_id=r["key_id"], created=r["created"]) for r in rows]


def create_steps(d: Dialect, name: str, key_hash: str, now: float) -> Steps[bool]:
    """Add a tenant with its first key; False when the name (or the key) is taken."""
    if not (yield query(_ADD_TENANT, name, key_hash, now)).rows:
        return False
    yield from purge_steps(d, name, now)  # whatever a deleted namesake left behind
    if not (yield query(_ADD_KEY, name, new_key_id(), key_hash, now)).rows:
        yield command("DELETE FROM tenants WHERE name = ?1", name)  # another tenant's key
        return False
    return True


def delete_steps(d: Dialect, name: str, now: float) -> Steps[DeletedTenant | None]:
    """Delete a tenant and everything it owns; None if there is none."""
    if not (yield from _locked(d, name)):
        return None
    hashes = yield query("SELECT key_hash FROM tenant_keys WHERE tenant = ?1", name)
    functions = yield query("SELECT name FROM functions WHERE tenant = ?1", name)
    yield command("DELETE FROM tenants WHERE name = ?1", name)
    yield from purge_steps(d, name, now)
    return DeletedTenant(
        key_hashes=tuple(r[0] for r in hashes.rows), functions=tuple(r[0] for r in functions.rows)
    )


def add_key_steps(d: Dialect, tenant: str, key_hash: str, now: float) -> Steps[KeyInfo | None]:
    """Give the tenant another key; None without the tenant; TooManyKeysError at the cap."""
    if not (yield from _locked(d, tenant)):
        return None
    if len((yield from _keys(tenant))) >= MAX_KEYS_PER_TENANT:
        raise TooManyKeysError(tenant)
    info = KeyInfo(key_id=new_key_id(), created=now)
    yield command(
        "INSERT INTO tenant_keys (tenant, key_id, key_hash, created) VALUES (?1, ?2, ?3, ?4)",
        tenant,
        info.key_id,
        key_hash,
        now,
    )
    return info


def revoke_steps(d: Dialect, tenant: str, key_id: str) -> Steps[str | None]:
    """Revoke a key: its hash, None if unknown; LastKeyError rather than the last one."""
    if not (yield from _locked(d, tenant)):
        return None
    key_hash = scalar((yield query(_KEY_HASH, tenant, key_id)))
    if key_hash is None:
        return None
    if len((yield from _keys(tenant))) <= 1:
        raise LastKeyError(tenant)
    yield command("DELETE FROM tenant_keys WHERE tenant = ?1 AND key_id = ?2", tenant, key_id)
    yield command(_FORGET_HASH, f"revoked:{tenant}:{key_id}", tenant, key_hash)
    return str(key_hash)


def secret_steps(name: str) -> Steps[bytes]:
    """The named secret, made (random) by whichever gateway asks first."""
    yield command(
        "INSERT INTO store_secrets (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        name,
        secrets.token_hex(32),
    )
    value = scalar((yield query("SELECT value FROM store_secrets WHERE name = ?1", name)))
    return bytes.fromhex(value)


class SqlTenants(SqlStore):
    """Tenants, keys and the store's secrets, for either dialect."""

    async def create_tenant(self, name: str, key_hash: str) -> bool:
        """`create_steps` in one transaction, now."""
        return await self._steps(create_steps(self.dialect, name, key_hash, time.time()))

    async def tenant_for_key(self, key_hash: str) -> str | None:
        """Through the unique `key_hash` index."""
        sql = "SELECT tenant FROM tenant_keys WHERE key_hash = ?1"
        name = scalar(await self._once(query(sql, key_hash)))
        return None if name is None else str(name)

    async def tenant_exists(self, name: str) -> bool:
        """Whether its row is there."""
        done = await self._once(query("SELECT 1 FROM tenants WHERE name = ?1", name))
        return bool(done.rows)

    async def list_tenants(self) -> list[TenantInfo]:
        """By name."""
        done = await self._once(query("SELECT name, created FROM tenants ORDER BY name"))
        return [TenantInfo(name=r["name"], created=float(r["created"])) for r in done.rows]

    async def delete_tenant(self, name: str, now: float) -> DeletedTenant | None:
        """`delete_steps` in one transaction."""
        return await self._steps(delete_steps(self.dialect, name, now))

    async def add_key(self, tenant: str, key_hash: str, now: float) -> KeyInfo | None:
        """`add_key_steps` in one transaction."""
        return await self._steps(add_key_steps(self.dialect, tenant, key_hash, now))

    async def list_keys(self, tenant: str) -> list[KeyInfo]:
        """Oldest first."""
        return await self._steps(_keys(tenant))

    async def revoke_key(self, tenant: str, key_id: str) -> str | None:
        """`revoke_steps` in one transaction."""
        return await self._steps(revoke_steps(self.dialect, tenant, key_id))

    async def secret(self, name: str) -> bytes:
        """`secret_steps` in one transaction."""
        return await self._steps(secret_steps(name))
