"""Activations and usage records in SQL, for both dialects: the activation upsert, stated
once, byte-capped pages and deletion.

Results and logs can be megabytes (SQLite keeps them on overflow pages read in a chain,
PostgreSQL TOASTs them out of line): pages and deletion read sizes, keys and times from
indexes and load whole rows only for the records they return (`Dialect.row_key`,
`Dialect.stored_size`, `Dialect.tenant_by_time`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from invoker.api import Activation, Status
from invoker.metering import UsageRecord
from invoker.store.activations import (
    DELETE_BATCH,
    ActivationPage,
    Removal,
    activation_size,
    fit_page,
    page_end,
)
from invoker.store.sql.rows import first, from_row
from invoker.store.sql.statements import Dialect, SqlStore, Steps, Stmt, command, query

# The request side (tenant, function, version, memory, trigger) and `seq` are fixed at
# the first insert: an update moves the outcome along, never the activation's place.
_UPSERT = """
INSERT INTO activations (id, tenant, function, version, status, result, error, logs, start,
    "end", duration_ms, init_ms, wait_ms, cold_start, memory_mb, node, trigger,
    peak_memory_mb, cpu_seconds, attempts, dead_letter, size{seq_column})
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    ?19, ?20, ?21, ?22{seq_value})
ON CONFLICT (id) DO UPDATE SET status = excluded.status, result = excluded.result,
    error = excluded.error, logs = excluded.logs, start = excluded.start,
    "end" = excluded."end", duration_ms = excluded.duration_ms, init_ms = excluded.init_ms,
    wait_ms = excluded.wait_ms, cold_start = excluded.cold_start, node = excluded.node,
    peak_memory_mb = excluded.peak_memory_mb, cpu_seconds = excluded.cpu_seconds,
    attempts = excluded.attempts, dead_letter = excluded.dead_letter, size = excluded.size
"""

# One usage record per attempt: a retried async call ran (and is billed) each time.
USAGE_INSERT = """
INSERT INTO usage (activation_id, attempt, tenant, start, record) VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (activation_id, attempt) DO NOTHING
"""

_BY_ID = "SELECT * FROM activations WHERE id = ?1 AND tenant = ?2"
_NEWEST = "SELECT * FROM activations WHERE tenant = ?1 ORDER BY seq DESC LIMIT ?2"
_NEWEST_OF = (
    "SELECT * FROM activations WHERE tenant = ?1 AND function = ?3 ORDER BY seq DESC LIMIT ?2"
)
_USAGE_ALL = "SELECT record FROM usage WHERE start >= ?1 AND start < ?2 ORDER BY start"
_USAGE_OF = (
    "SELECT record FROM usage WHERE tenant = ?3 AND start >= ?1 AND start < ?2 ORDER BY start"
)
_SET_STATUS = "UPDATE activations SET status = ?2 WHERE {ids}"
_TIME = 'COALESCE(a.start, a."end")'  # as in each dialect's activations_by_time index
_NO_LOGS = json.dumps([])
# `json.dumps` for a usage record, a flat dict of numbers and strings: no nested value can
# refer back to it, so the encoder need not track containers it is inside (its output is
# the same text).
_dumps_flat = json.JSONEncoder(check_circular=False).encode


def activation_from_row(row: Any) -> Activation:
    """An activation from its row."""
    return from_row(
        Activation,
        row,
        status=Status(row["status"]),
        result=json.loads(row["result"]) if row["result"] is not None else None,
        logs=json.loads(row["logs"]),
        cold_start=None if row["cold_start"] is None else bool(row["cold_start"]),
        dead_letter=bool(row["dead_letter"]),
    )


def upsert_sql(d: Dialect) -> str:
    """The activation upsert in the dialect's words (its arguments: `activation_args`)."""
    seq_column, seq_value = d.seq()
    return _UPSERT.format(seq_column=seq_column, seq_value=seq_value)


def activation_args(d: Dialect, a: Activation) -> tuple[Any, ...]:
    """The upsert's arguments for one activation (its result and logs as JSON)."""
    error = a.error
    if error is not None and not d.keeps_nul:  # keep the record, if not that one character
        error = error.replace("\x00", "\ufffd")
    result = None if a.result is None else json.dumps(a.result)
    logs = json.dumps(a.logs) if a.logs else _NO_LOGS  # most calls log nothing
    return (
        *(a.id, a.tenant, a.function, a.version, a.status.value, result, error, logs),
        *(a.start, a.end, a.duration_ms, a.init_ms, a.wait_ms, a.cold_start, a.memory_mb),
        *(a.node, a.trigger, a.peak_memory_mb, a.cpu_seconds, a.attempts, a.dead_letter),
        activation_size(result, logs, error),
    )


def usage_args(a: Activation, usage: Mapping[str, Any]) -> tuple[Any, ...]:
    """The usage insert's arguments: one record per attempt, keyed by (activation, attempt)."""
    start = float(usage.get("start", a.start or 0.0))
    record = _dumps_flat(usage if type(usage) is dict else dict(usage))
    return (a.id, max(1, a.attempts), a.tenant, start, record)


def save_steps(d: Dialect, activation: Activation, usage: Mapping[str, Any] | None) -> Steps[None]:
    """Upsert an activation and, for a finished attempt, append its usage record."""
    yield command(upsert_sql(d), *activation_args(d, activation))
    if usage is not None:
        yield command(USAGE_INSERT, *usage_args(activation, usage))


def set_status(d: Dialect, activation_ids: list[str], status: Status) -> Stmt:
    """Move these activations to `status` (a queue change moves its activation along)."""
    return command(_SET_STATUS.format(ids=d.in_list("id", 1)), activation_ids, status.value)


def _remove_steps(d: Dialect, tenant: str, activation_id: str) -> Steps[Removal]:
    found = yield query(
        f"SELECT 1 FROM activations WHERE id = ?1 AND tenant = ?2{d.for_update}",
        activation_id,
        tenant,
    )
    if not found.rows:
        return Removal.MISSING
    if (yield query("SELECT 1 FROM queue WHERE activation_id = ?1", activation_id)).rows:
        return Removal.QUEUED
    yield command("DELETE FROM activations WHERE id = ?1", activation_id)
    return Removal.DELETED


def _where(
    d: Dialect,
    tenant: str | None,
    function: str | None,
    *,
    before_time: float | None = None,
    before_seq: int | None = None,
) -> tuple[str, list[Any]]:
    """A WHERE clause over `activations a`, and its arguments."""
    terms, args = list[str](), list[Any]()
    for column, compare, value in (
        (d.tenant_by_time if before_time is not None else "a.tenant", "=", tenant),
        ("a.function", "=", function),
        (_TIME, "<", before_time),
        ("a.seq", "<", before_seq),
    ):
        if value is not None:
            args.append(value)
            terms.append(f"{column} {compare} ?{len(args)}")
    return " AND ".join(terms) or "1 = 1", args


def page_steps(
    d: Dialect,
    tenant: str,
    function: str | None,
    limit: int,
    before_seq: int | None,
    max_bytes: int,
) -> Steps[ActivationPage]:
    """Sizes and keys first, from the page index; then whole rows for the page chosen."""
    where, args = _where(d, tenant, function, before_seq=before_seq)
    heads = yield query(
        f"SELECT a.{d.row_key} AS row_key, a.seq AS seq, {d.stored_size} AS size "
        f"FROM activations a WHERE {where} ORDER BY a.seq DESC LIMIT ?{len(args) + 1}",
        *args,
        limit + 1,
    )
    sizes = [int(h["size"]) for h in heads.rows]
    count, truncated = fit_page(sizes, limit, max_bytes)
    chosen = [h["row_key"] for h in heads.rows[:count]]
    rows = yield query(
        f"SELECT * FROM activations WHERE {d.in_list(d.row_key, 1)} ORDER BY seq DESC", chosen
    )
    return ActivationPage(
        activations=[activation_from_row(r) for r in rows.rows],
        next_seq=page_end([int(h["seq"]) for h in heads.rows], count),
        truncated=truncated,
        size=sum(sizes[:count]),
    )


class SqlActivations(SqlStore):
    """Activations and usage records, for either dialect (SQLite adds its write-behind and
    space reclaim: `invoker.store.sqlite.activations`)."""

    async def save_activation(
        self, activation: Activation, usage: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> None:
        """The upsert and the usage record in one transaction (`wait` is the dialect's)."""
        await self._steps(save_steps(self.dialect, activation, usage))

    async def get_activation(self, tenant: str, activation_id: str) -> Activation | None:
        """By id, only within the tenant."""
        row = first(await self._once(query(_BY_ID, activation_id, tenant)))
        return None if row is None else activation_from_row(row)

    async def list_activations(
        self, tenant: str, function: str | None, limit: int
    ) -> list[Activation]:
        """Newest first by `seq`; one text per case, so each keeps its own index."""
        sql = _NEWEST if function is None else _NEWEST_OF
        args = (tenant, limit) if function is None else (tenant, limit, function)
        done = await self._once(query(sql, *args))
        return [activation_from_row(r) for r in done.rows]

    async def list_usage(
        self, tenant: str | None, start_from: float, start_to: float
    ) -> list[UsageRecord]:
        """Records by start, exact (`gb_seconds` stays a decimal string in the JSON)."""
        window = (float(start_from), float(start_to))
        stmt = query(_USAGE_ALL, *window) if tenant is None else query(_USAGE_OF, *window, tenant)
        done = await self._once(stmt)
        return [UsageRecord.from_row(json.loads(r["record"])) for r in done.rows]

    async def delete_activation(self, tenant: str, activation_id: str) -> Removal:
        """The activation's row, locked while the queue is checked for it."""
        return await self._steps(_remove_steps(self.dialect, tenant, activation_id))

    async def list_activations_page(
        self,
        tenant: str,
        function: str | None,
        limit: int,
        before_seq: int | None,
        max_bytes: int,
    ) -> ActivationPage:
        """`page_steps` in one transaction."""
        d = self.dialect
        return await self._steps(page_steps(d, tenant, function, limit, before_seq, max_bytes))

    async def delete_activations(
        self, tenant: str | None, function: str | None, before: float
    ) -> int:
        """By the time index, in batches of `DELETE_BATCH`, each its own transaction."""
        d = self.dialect
        where, args = _where(d, tenant, function, before_time=float(before))
        batch = command(
            f"DELETE FROM activations WHERE {d.row_key} IN (SELECT a.{d.row_key} "
            f"FROM activations a WHERE {where} AND NOT EXISTS "
            f"(SELECT 1 FROM queue q WHERE q.activation_id = a.id) LIMIT {DELETE_BATCH})",
            *args,
        )
        total = 0
        while True:
            deleted = (await self._once(batch)).count
            total += deleted
            if deleted < DELETE_BATCH:
                return total

    async def reclaim_space(self) -> int:
        """Nothing to give back where the database reuses freed space itself (PostgreSQL's
        autovacuum); SQLite's store says otherwise."""
        return 0
