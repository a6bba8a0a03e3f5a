"""Functions and their code in SQL, for both dialects.

A deploy stores its code blob (once per content hash), upserts the function in one
statement, so concurrent deploys of one function get distinct versions, and keeps that
row as its immutable version (`invoker.store.sql.versions`), in one transaction. Blob
collection runs under the blob lock held exclusively, which deploys hold shared from their blob
insert to their commit: a sweep never removes a blob a concurrent deploy is about to
reference (`Dialect.blob_lock`; SQLite has one writer and needs none).
"""

from __future__ import annotations

import json
from typing import Any

from invoker.store.functions import FunctionDraft, StoredFunction
from invoker.store.sql.function_rows import function_from_row
from invoker.store.sql.rows import first, scalar
from invoker.store.sql.statements import Dialect, Steps, command, each, query
from invoker.store.sql.versions import SqlVersions, forget_steps, snapshot_steps

__all__ = ["UNUSED_BLOBS", "SqlFunctions", "delete_steps", "function_from_row", "put_steps"]

_PUT_BLOB = "INSERT INTO blobs (sha256, data) VALUES (?1, ?2) ON CONFLICT DO NOTHING"
# `version` 1 is a new function: an update always makes it 2 or more.
_UPSERT = """
INSERT INTO functions (tenant, name, version, runtime, handler, code_sha256, code_kind,
    code_size, memory_mb, timeout_s, concurrency, env, network, created, updated,
    params, secret_params, web, web_raw, web_secret_hash, components, annotations,
    image, image_protocol)
VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13,
    ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
ON CONFLICT (tenant, name) DO UPDATE SET version = functions.version + 1,
    runtime = excluded.runtime, handler = excluded.handler,
    code_sha256 = excluded.code_sha256, code_kind = excluded.code_kind,
    code_size = excluded.code_size, memory_mb = excluded.memory_mb,
    timeout_s = excluded.timeout_s, concurrency = excluded.concurrency, env = excluded.env,
    network = excluded.network, updated = excluded.updated,
    params = excluded.params, secret_params = excluded.secret_params, web = excluded.web,
    web_raw = excluded.web_raw, web_secret_hash = excluded.web_secret_hash,
    components = excluded.components, annotations = excluded.annotations,
    image = excluded.image, image_protocol = excluded.image_protocol
RETURNING *
"""
_ONE = "SELECT * FROM functions WHERE tenant = ?1 AND name = ?2"
UNUSED_BLOBS = (
    "DELETE FROM blobs WHERE NOT EXISTS "
    "(SELECT 1 FROM functions f WHERE f.code_sha256 = blobs.sha256) AND NOT EXISTS "
    "(SELECT 1 FROM function_versions v WHERE v.code_sha256 = blobs.sha256)"
)
"""Collect the code blobs no function or version uses (under the exclusive blob lock)."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def put_steps(d: Dialect, draft: FunctionDraft, now: float) -> Steps[tuple[StoredFunction, bool]]:
    """Store the code blob, the function and its new version; `version` grows by one on
    every update."""
    sha = draft.code_sha256
    yield from each(d.blob_lock(shared=True))
    yield command(_PUT_BLOB, sha, draft.code)
    f, env = draft, json.dumps(dict(draft.env), sort_keys=True)
    components = _json(list(f.sequence)) if f.sequence else None
    upserted = yield query(
        _UPSERT,
        *(f.tenant, f.name, f.runtime, f.handler, sha, f.code_kind, len(f.code), f.memory_mb),
        *(float(f.timeout_s), f.concurrency, env, f.network, float(now)),
        *(_json(dict(f.params)), _json(list(f.secret_params)), f.web, f.web_raw),
        *(f.web_secret_hash, components, _json(dict(f.annotations))),
        *(f.image, f.image_protocol),
    )
    stored = function_from_row(first(upserted))
    yield from snapshot_steps(f.tenant, f.name, stored.spec.version)
    return stored, stored.spec.version == 1


def delete_steps(d: Dialect, tenant: str, name: str) -> Steps[bool]:
    """Remove a function with its versions and aliases, what keep-alive learned of it,
    and code no function uses."""
    yield from each(d.blob_lock(shared=False))
    gone = yield command("DELETE FROM functions WHERE tenant = ?1 AND name = ?2", tenant, name)
    yield from forget_steps(tenant, name)
    yield command(UNUSED_BLOBS)
    yield command("DELETE FROM keepalive WHERE tenant = ?1 AND function = ?2", tenant, name)
    return gone.count == 1


class SqlFunctions(SqlVersions):
    """Functions and code blobs, and (`SqlVersions`) their versions and aliases, for
    either dialect."""

    async def put_function(self, draft: FunctionDraft, now: float) -> tuple[StoredFunction, bool]:
        """`put_steps` in one transaction."""
        return await self._steps(put_steps(self.dialect, draft, now))

    async def get_function(self, tenant: str, name: str) -> StoredFunction | None:
        """By its key."""
        row = first(await self._once(query(_ONE, tenant, name)))
        return None if row is None else function_from_row(row)

    async def list_functions(self, tenant: str) -> list[StoredFunction]:
        """By name."""
        sql = "SELECT * FROM functions WHERE tenant = ?1 ORDER BY name"
        return [function_from_row(r) for r in (await self._once(query(sql, tenant))).rows]

    async def delete_function(self, tenant: str, name: str) -> bool:
        """`delete_steps` in one transaction."""
        return await self._steps(delete_steps(self.dialect, tenant, name))

    async def get_code(self, sha256: str) -> bytes | None:
        """The blob's bytes."""
        data = scalar(await self._once(query("SELECT data FROM blobs WHERE sha256 = ?1", sha256)))
        return None if data is None else bytes(data)
