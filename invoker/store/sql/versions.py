"""Function versions and aliases in SQL, for both dialects (`invoker.store.versions`).

A deploy copies the function's new row into `function_versions` in its own transaction
(`snapshot_steps`, run by `invoker.store.sql.functions.put_steps`). An alias is one row
per version it names (with its weight), so "no alias names this version" is a plain
NOT EXISTS when versions are pruned. Pruning removes code blobs only under the blob lock
held exclusively, as deleting a function does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from invoker.store.functions import StoredFunction
from invoker.store.sql.function_rows import function_from_row
from invoker.store.sql.rows import first, scalar
from invoker.store.sql.schema import VERSION_COLUMNS
from invoker.store.sql.statements import (
    Dialect,
    SqlStore,
    Steps,
    command,
    command_many,
    each,
    query,
)
from invoker.store.versions import Alias, MissingVersions
from invoker.versions import Split

_KEY = "tenant = ?1 AND name = ?2"
_SNAPSHOT = (
    f"INSERT INTO function_versions ({VERSION_COLUMNS}, created) "
    f"SELECT {VERSION_COLUMNS}, updated FROM functions WHERE {_KEY}"
)
# `created AS updated`: a version is never updated; it reads as a StoredFunction.
_VERSIONS = f"SELECT *, created AS updated FROM function_versions WHERE {_KEY}"
_ALIAS_ROWS = (
    "SELECT alias, version, weight, created, updated FROM function_aliases "
    f"WHERE {_KEY} AND (CAST(?3 AS TEXT) IS NULL OR alias = ?3) ORDER BY alias, version"
)
_ADD_ALIAS = (
    "INSERT INTO function_aliases (tenant, name, alias, version, weight, created, updated) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
)
_NTH_NEWEST = f"SELECT version FROM function_versions WHERE {_KEY} ORDER BY version DESC"
_PRUNE = (
    f"DELETE FROM function_versions WHERE {_KEY} AND version < ?3 AND NOT EXISTS "
    "(SELECT 1 FROM function_aliases a WHERE a.tenant = ?1 AND a.name = ?2 "
    "AND a.version = function_versions.version) RETURNING version, code_sha256"
)
UNUSED_OF = (
    "DELETE FROM blobs WHERE {listed} "
    "AND NOT EXISTS (SELECT 1 FROM functions f WHERE f.code_sha256 = blobs.sha256) "
    "AND NOT EXISTS (SELECT 1 FROM function_versions v WHERE v.code_sha256 = blobs.sha256)"
)


def snapshot_steps(tenant: str, name: str, version: int) -> Steps[None]:
    """Keep the function's row as deployed as its version `version`. A new function
    (version 1) first clears what a deleted namesake may have left."""
    if version == 1:
        yield from forget_steps(tenant, name)
    stale = f"DELETE FROM function_versions WHERE {_KEY} AND version = ?3"
    yield command(stale, tenant, name, version)
    yield command(_SNAPSHOT, tenant, name)


def forget_steps(tenant: str, name: str) -> Steps[None]:
    """Delete a function's versions and aliases (inside the caller's transaction)."""
    yield command(f"DELETE FROM function_aliases WHERE {_KEY}", tenant, name)
    yield command(f"DELETE FROM function_versions WHERE {_KEY}", tenant, name)


def prune_steps(d: Dialect, tenant: str, name: str, keep: int) -> Steps[list[int]]:
    """Delete versions past the newest `keep` that no alias names, and their code if
    nothing else uses it; the versions deleted."""
    oldest_kept = scalar((yield query(f"{_NTH_NEWEST} LIMIT 1 OFFSET ?3", tenant, name, keep - 1)))
    if oldest_kept is None:
        return []  # `keep` versions or fewer: nothing to do, and no lock taken
    yield from each(d.blob_lock(shared=False))
    # As `put_alias_steps` does: an alias made meanwhile is seen, never left dangling.
    yield query(f"SELECT 1 FROM functions WHERE {_KEY}{d.for_update}", tenant, name)
    gone = yield query(_PRUNE, tenant, name, oldest_kept)
    shas = sorted({row["code_sha256"] for row in gone.rows})
    if shas:
        yield command(UNUSED_OF.format(listed=d.in_list("sha256", 1)), shas)
    return sorted(int(row["version"]) for row in gone.rows)


def _aliases(tenant: str, function: str, rows: list[Any]) -> list[Alias]:
    """Aliases from their rows (one per version named), by name."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row["alias"]].append(row)
    return [
        Alias(
            tenant=tenant,
            function=function,
            name=alias,
            split=tuple((int(r["version"]), float(r["weight"])) for r in named),
            created=min(float(r["created"]) for r in named),
            updated=max(float(r["updated"]) for r in named),
        )
        for alias, named in sorted(grouped.items())
    ]


def put_alias_steps(
    d: Dialect, tenant: str, name: str, alias: str, split: Split, now: float
) -> Steps[tuple[Alias, bool] | None]:
    """Point an alias at its versions, each of which must exist (the function's row
    locked, so a concurrent delete waits); None without the function."""
    found = yield query(f"SELECT 1 FROM functions WHERE {_KEY}{d.for_update}", tenant, name)
    if not found.rows:
        return None
    have = yield query(f"SELECT version FROM function_versions WHERE {_KEY}", tenant, name)
    missing = sorted({v for v, _ in split} - {int(r["version"]) for r in have.rows})
    if missing:
        raise MissingVersions(missing)
    before = yield query(_ALIAS_ROWS, tenant, name, alias)
    created = min((float(r["created"]) for r in before.rows), default=now)
    yield command(f"DELETE FROM function_aliases WHERE {_KEY} AND alias = ?3", tenant, name, alias)
    rows = [(tenant, name, alias, v, w, created, now) for v, w in split]
    yield command_many(_ADD_ALIAS, rows)
    stored = Alias(tenant, name, alias, split, created, now)
    return stored, not before.rows


class SqlVersions(SqlStore):
    """Versions and aliases, for either dialect (mixed into `SqlFunctions`)."""

    async def get_version(self, tenant: str, name: str, version: int) -> StoredFunction | None:
        """By its key."""
        row = first(await self._once(query(f"{_VERSIONS} AND version = ?3", tenant, name, version)))
        return None if row is None else function_from_row(row)

    async def list_versions(self, tenant: str, name: str) -> list[StoredFunction]:
        """Newest first."""
        done = await self._once(query(f"{_VERSIONS} ORDER BY version DESC", tenant, name))
        return [function_from_row(r) for r in done.rows]

    async def prune_versions(self, tenant: str, name: str, keep: int) -> list[int]:
        """`prune_steps` in one transaction."""
        return await self._steps(prune_steps(self.dialect, tenant, name, max(1, keep)))

    async def put_alias(
        self, tenant: str, name: str, alias: str, split: Split, now: float
    ) -> tuple[Alias, bool] | None:
        """`put_alias_steps` in one transaction."""
        return await self._steps(put_alias_steps(self.dialect, tenant, name, alias, split, now))

    async def get_alias(self, tenant: str, name: str, alias: str) -> Alias | None:
        """Its rows, grouped."""
        done = await self._once(query(_ALIAS_ROWS, tenant, name, alias))
        found = _aliases(tenant, name, done.rows)
        return found[0] if found else None

    async def list_aliases(self, tenant: str, name: str) -> list[Alias]:
        """Every alias's rows, grouped."""
        done = await self._once(query(_ALIAS_ROWS, tenant, name, None))
        return _aliases(tenant, name, done.rows)

    async def delete_alias(self, tenant: str, name: str, alias: str) -> bool:
        """Its rows."""
        sql = f"DELETE FROM function_aliases WHERE {_KEY} AND alias = ?3"
        return (await self._once(command(sql, tenant, name, alias))).count > 0
