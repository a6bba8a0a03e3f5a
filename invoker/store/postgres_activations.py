"""The PostgreSQL store's activation history: byte-capped pages, deletion, retention.

Mixed into `PostgresStore` (which provides `_tx` and `_conn`). Same semantics as
`sqlite_activations.py`. Large results and logs are TOASTed (stored out of line), so
reading a row's size or time never reads them; `octet_length` of a TOASTed value reads its
header only (for rows written before the `size` column). Deleted rows' space is reclaimed
by autovacuum for reuse; nothing to do here.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from invoker.store.lifecycle import (
    DELETE_BATCH,
    ActivationPage,
    Removal,
    fit_page,
    page_end,
)
from invoker.store.rows import activation_from_row

_SIZE = (
    "COALESCE(a.size, COALESCE(octet_length(a.result), 0) + octet_length(a.logs) "
    "+ COALESCE(octet_length(a.error), 0))"
)
_TIME = 'COALESCE(a.start, a."end")'  # as in the activations_by_time index


class _Where:
    """A WHERE clause over `activations a` with numbered parameters."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.args: list[Any] = []

    def add(self, term: str, value: Any) -> None:
        """Add `term`, whose one `{}` becomes the value's parameter number."""
        self.args.append(value)
        self.terms.append(term.format(f"${len(self.args)}"))

    def sql(self) -> str:
        return " AND ".join(self.terms) or "TRUE"

    def next_param(self) -> str:
        return f"${len(self.args) + 1}"


def _filters(tenant: str | None, function: str | None, before_time: float | None) -> _Where:
    where = _Where()
    if tenant is not None:
        where.add("a.tenant = {}", tenant)
    if function is not None:
        where.add("a.function = {}", function)
    if before_time is not None:
        where.add(f"{_TIME} < {{}}", float(before_time))
    return where


class PostgresActivations:
    """Activation pages, deletion and retention; mixed into `PostgresStore`."""

    def _tx(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore's

    def _conn(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore's

    async def list_activations_page(
        self,
        tenant: str,
        function: str | None,
        limit: int,
        before_seq: int | None,
        max_bytes: int,
    ) -> ActivationPage:
        """The tenant's newest activations older than `before_seq`, within `max_bytes`."""
        where = _filters(tenant, function, None)
        if before_seq is not None:
            where.add("a.seq < {}", before_seq)
        async with self._conn() as con:
            heads = await con.fetch(
                f"SELECT a.seq, a.id, {_SIZE} AS size FROM activations a WHERE {where.sql()} "
                f"ORDER BY a.seq DESC LIMIT {where.next_param()}",
                *where.args,
                limit + 1,
            )
            count, truncated = fit_page([int(h["size"]) for h in heads], limit, max_bytes)
            rows = await con.fetch(
                "SELECT * FROM activations WHERE id = ANY($1::text[]) ORDER BY seq DESC",
                [h["id"] for h in heads[:count]],
            )
        return ActivationPage(
            activations=[activation_from_row(r) for r in rows],
            next_seq=page_end([int(h["seq"]) for h in heads], count),
            truncated=truncated,
            size=sum(int(h["size"]) for h in heads[:count]),
        )

    async def delete_activation(self, tenant: str, activation_id: str) -> Removal:
        """Delete one of the tenant's activations (never one still queued or running)."""
        async with self._tx() as con:
            found = await con.fetchval(
                "SELECT 1 FROM activations WHERE id = $1 AND tenant = $2 FOR UPDATE",
                activation_id,
                tenant,
            )
            if found is None:
                return Removal.MISSING
            if await con.fetchval("SELECT 1 FROM queue WHERE activation_id = $1", activation_id):
                return Removal.QUEUED
            await con.execute("DELETE FROM activations WHERE id = $1", activation_id)
        return Removal.DELETED

    async def delete_activations(
        self, tenant: str | None, function: str | None, before: float
    ) -> int:
        """Delete activations that started (or, never started, ended) before `before`.

        Of one tenant (None: every tenant), optionally of one function; calls still queued
        or running stay. Batches of `DELETE_BATCH`, each its own transaction.
        """
        where = _filters(tenant, function, before)
        sql = (
            "DELETE FROM activations WHERE id IN (SELECT a.id FROM activations a "
            f"WHERE {where.sql()} AND NOT EXISTS "
            "(SELECT 1 FROM queue q WHERE q.activation_id = a.id) "
            f"LIMIT {DELETE_BATCH})"
        )
        total = 0
        while True:
            async with self._conn() as con:
                status = await con.execute(sql, *where.args)
            deleted = int(status.rsplit(" ", 1)[-1])
            total += deleted
            if deleted < DELETE_BATCH:
                return total

    async def reclaim_space(self) -> int:
        """Nothing to do: autovacuum makes deleted rows' space reusable."""
        return 0
