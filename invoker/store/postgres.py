"""PostgreSQL store, for several gateways sharing one database.

Same semantics as the SQLite store, with asyncpg (natively async: no threads). What
differs is what several writers at once need:

- the queue is claimed with `SELECT ... FOR UPDATE SKIP LOCKED`, so two gateways never
  run the same call and neither waits on the other's claimed rows;
- versions, created times and fire history are kept by single-statement upserts, so
  concurrent deploys of one function get distinct versions;
- blob garbage collection takes an exclusive advisory lock that deploys share, so a
  sweep never removes a blob a concurrent deploy is about to reference.

JSON columns are text holding `json.dumps` output, as in SQLite: it round-trips exactly
(key order, 1.0 vs 1) and, unlike jsonb, accepts "\\u0000". Usage records are stored
as their JSON row too, so `gb_seconds` stays an exact decimal string.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg

from invoker.api import Activation
from invoker.metering import UsageRecord
from invoker.store.base import (
    LEASE_S,
    FunctionDraft,
    NodeLease,
    QueuedCall,
    Rule,
    StoredFunction,
    Trigger,
)
from invoker.store.errors import StoreFull
from invoker.store.lifecycle import activation_size
from invoker.store.postgres_activations import PostgresActivations
from invoker.store.postgres_limits import PostgresLimits, fair_due, has_room
from invoker.store.postgres_schema import SCHEMA
from invoker.store.postgres_tenants import LIFECYCLE_SCHEMA, PostgresTenants
from invoker.store.rows import (
    activation_from_row,
    function_from_row,
    queued_from_row,
    rule_from_row,
    trigger_from_row,
)

_FUNCTION_UPSERT = """
INSERT INTO functions (tenant, name, version, runtime, handler, code_sha256, code_kind,
    code_size, memory_mb, timeout_s, concurrency, env, network, created, updated)
VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
ON CONFLICT (tenant, name) DO UPDATE SET version = functions.version + 1,
    runtime = excluded.runtime, handler = excluded.handler,
    code_sha256 = excluded.code_sha256, code_kind = excluded.code_kind,
    code_size = excluded.code_size, memory_mb = excluded.memory_mb,
    timeout_s = excluded.timeout_s, concurrency = excluded.concurrency, env = excluded.env,
    network = excluded.network, updated = excluded.updated
RETURNING *, (xmax = 0) AS inserted
"""

# The request side (tenant, function, version, memory, trigger) and `seq` are fixed at
# the first insert: an update moves the outcome along, never the activation's place.
_ACTIVATION_UPSERT = """
INSERT INTO activations (id, tenant, function, version, status, result, error, logs, start,
    "end", duration_ms, init_ms, wait_ms, cold_start, memory_mb, node, trigger,
    peak_memory_mb, cpu_seconds, attempts, dead_letter, size)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
    $19, $20, $21, $22)
ON CONFLICT (id) DO UPDATE SET status = excluded.status, result = excluded.result,
    error = excluded.error, logs = excluded.logs, start = excluded.start,
    "end" = excluded."end", duration_ms = excluded.duration_ms, init_ms = excluded.init_ms,
    wait_ms = excluded.wait_ms, cold_start = excluded.cold_start, node = excluded.node,
    peak_memory_mb = excluded.peak_memory_mb, cpu_seconds = excluded.cpu_seconds,
    attempts = excluded.attempts, dead_letter = excluded.dead_letter, size = excluded.size
"""

_USAGE_INSERT = """
INSERT INTO usage (activation_id, attempt, tenant, start, record) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (activation_id, attempt) DO NOTHING
"""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lock_key(label: str) -> int:
    """A stable signed 64-bit advisory-lock key."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big", signed=True)


def _rowcount(status: str) -> int:
    """The row count from a command tag such as 'DELETE 1'."""
    return int(status.rsplit(" ", 1)[-1])


@asynccontextmanager
async def _full_as_store_full() -> AsyncIterator[None]:
    """PostgreSQL's disk_full (rolled back) as the store's typed StoreFull."""
    try:
        yield
    except asyncpg.DiskFullError as exc:
        raise StoreFull(str(exc)) from exc


async def _save_activation(
    con: Any, activation: Activation, usage: Mapping[str, Any] | None
) -> None:
    """Upsert an activation and, for a finished attempt, append its usage record."""
    a = activation
    # A text column cannot hold NUL; a function's error message can. Keep the record.
    error = None if a.error is None else a.error.replace("\x00", "\ufffd")
    result = None if a.result is None else json.dumps(a.result)
    logs = json.dumps(a.logs)
    await con.execute(
        _ACTIVATION_UPSERT,
        a.id,
        a.tenant,
        a.function,
        a.version,
        a.status.value,
        result,
        error,
        logs,
        a.start,
        a.end,
        a.duration_ms,
        a.init_ms,
        a.wait_ms,
        a.cold_start,
        a.memory_mb,
        a.node,
        a.trigger,
        a.peak_memory_mb,
        a.cpu_seconds,
        a.attempts,
        a.dead_letter,
        activation_size(result, logs, error),
    )
    if usage is not None:
        # One usage record per attempt: a retried async call ran (and is billed) each time.
        await con.execute(
            _USAGE_INSERT,
            a.id,
            max(1, a.attempts),
            a.tenant,
            float(usage.get("start", a.start or 0.0)),
            json.dumps(dict(usage)),
        )


class PostgresStore(PostgresLimits, PostgresTenants, PostgresActivations):
    """The Store protocol over a PostgreSQL database, shareable by several gateways.

    `schema`, when given, is created if missing and put first on every connection's
    search_path (one database can then hold several independent stores).
    """

    def __init__(self, url: str, *, schema: str | None = None, max_connections: int = 10) -> None:
        self._url = url
        self._schema = schema
        self._max_connections = max_connections
        self._pool: Any = None
        self._blob_lock = _lock_key(f"nimbus.blobs:{schema or ''}")
        self._schema_lock = _lock_key(f"nimbus.schema:{schema or ''}")

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        """A pooled connection inside one transaction: commit, or roll back on error."""
        assert self._pool is not None, "store is not open"
        async with _full_as_store_full(), self._pool.acquire() as con, con.transaction():
            yield con

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A pooled connection for a single statement (its own implicit transaction)."""
        assert self._pool is not None, "store is not open"
        async with _full_as_store_full(), self._pool.acquire() as con:
            yield con

    async def open(self) -> None:
        """Connect and create the schema and tables if needed (safe from several gateways)."""
        settings = {} if self._schema is None else {"search_path": _quote_ident(self._schema)}
        self._pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=self._max_connections, server_settings=settings
        )
        try:
            async with self._tx() as con:
                # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog.
                await con.execute("SELECT pg_advisory_xact_lock($1)", self._schema_lock)
                if self._schema is not None:
                    await con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(self._schema)}")
                await con.execute(SCHEMA)
                await con.execute(LIFECYCLE_SCHEMA)
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def close(self) -> None:
        """Close the pool (waiting for statements in flight)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # functions

    async def put_function(self, draft: FunctionDraft, now: float) -> tuple[StoredFunction, bool]:
        """Store the code blob and the function; `version` grows by one on every update."""
        sha = hashlib.sha256(draft.code).hexdigest()
        async with self._tx() as con:
            await con.execute("SELECT pg_advisory_xact_lock_shared($1)", self._blob_lock)
            await con.execute(
                "INSERT INTO blobs (sha256, data) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                sha,
                draft.code,
            )
            row = await con.fetchrow(
                _FUNCTION_UPSERT,
                draft.tenant,
                draft.name,
                draft.runtime,
                draft.handler,
                sha,
                draft.code_kind,
                len(draft.code),
                draft.memory_mb,
                float(draft.timeout_s),
                draft.concurrency,
                json.dumps(dict(draft.env), sort_keys=True),
                draft.network,
                float(now),
            )
        return function_from_row(row), bool(row["inserted"])

    async def get_function(self, tenant: str, name: str) -> StoredFunction | None:
        """One function of one tenant."""
        async with self._conn() as con:
            row = await con.fetchrow(
                "SELECT * FROM functions WHERE tenant = $1 AND name = $2", tenant, name
            )
        return None if row is None else function_from_row(row)

    async def list_functions(self, tenant: str) -> list[StoredFunction]:
        """Every function of one tenant, by name."""
        async with self._conn() as con:
            rows = await con.fetch(
                "SELECT * FROM functions WHERE tenant = $1 ORDER BY name", tenant
            )
        return [function_from_row(r) for r in rows]

    async def delete_function(self, tenant: str, name: str) -> bool:
        """Remove a function; every code blob no function uses any more goes with it."""
        async with self._tx() as con:
            # Exclusive against deploys (which hold it shared from blob insert to commit).
            await con.execute("SELECT pg_advisory_xact_lock($1)", self._blob_lock)
            status = await con.execute(
                "DELETE FROM functions WHERE tenant = $1 AND name = $2", tenant, name
            )
            await con.execute(
                "DELETE FROM blobs b WHERE NOT EXISTS "
                "(SELECT 1 FROM functions f WHERE f.code_sha256 = b.sha256)"
            )
            await con.execute(
                "DELETE FROM keepalive WHERE tenant = $1 AND function = $2", tenant, name
            )
        return _rowcount(status) == 1

    async def save_keepalive(
        self, policy: str, states: Sequence[tuple[str, str, Mapping[str, Any]]], now: float
    ) -> None:
        """Keep (tenant, function, state) snapshots of `policy`, replacing older ones."""
        if not states:
            return
        async with self._tx() as con:
            await con.executemany(
                "INSERT INTO keepalive (policy, tenant, function, state, updated) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (policy, tenant, function) "
                "DO UPDATE SET state = EXCLUDED.state, updated = EXCLUDED.updated",
                [(policy, t, f, json.dumps(dict(state)), float(now)) for t, f, state in states],
            )

    async def load_keepalive(self, policy: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Every (tenant, function, state) snapshot of `policy`."""
        async with self._conn() as con:
            rows = await con.fetch(
                "SELECT tenant, function, state FROM keepalive WHERE policy = $1", policy
            )
        return [(r["tenant"], r["function"], json.loads(r["state"])) for r in rows]

    async def get_code(self, sha256: str) -> bytes | None:
        """A code blob by its content hash."""
        async with self._conn() as con:
            data = await con.fetchval("SELECT data FROM blobs WHERE sha256 = $1", sha256)
        return None if data is None else bytes(data)

    # activations

    async def save_activation(
        self, activation: Activation, usage: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> None:
        """Insert or replace an activation and, in the same transaction, its usage record.

        `wait=False` still awaits the write here: one round trip to the server, and the
        simplest way to keep read-your-writes with a pool of connections (a write left
        in flight on one connection could lose the race to a read on another).
        """
        async with self._tx() as con:
            await _save_activation(con, activation, usage)

    async def enqueue(
        self,
        activation: Activation,
        args: Mapping[str, Any],
        not_before: float,
        *,
        backlog: int | None = None,
    ) -> bool:
        """Accept an async call: its pending activation and its queue entry, atomically."""
        return await self.enqueue_all([(activation, args)], not_before, backlog=backlog)

    async def enqueue_all(
        self,
        calls: Sequence[tuple[Activation, Mapping[str, Any]]],
        not_before: float,
        *,
        backlog: int | None = None,
    ) -> bool:
        """Accept calls of one tenant, all or none (none past its `backlog`); True if taken."""
        async with self._tx() as con:
            if calls and not await has_room(con, calls[0][0].tenant, len(calls), backlog):
                return False
            for activation, args in calls:
                await _save_activation(con, activation, None)
                await con.execute(
                    "INSERT INTO queue (activation_id, tenant, function, args, trigger, "
                    "attempts, not_before, state, created) "
                    "VALUES ($1, $2, $3, $4, $5, 0, $6, 'queued', $6)",
                    activation.id,
                    activation.tenant,
                    activation.function,
                    json.dumps(dict(args)),
                    activation.trigger,
                    float(not_before),
                )
        return True

    async def claim(
        self,
        now: float,
        limit: int,
        *,
        owner: str = "",
        lease_s: float = LEASE_S,
        skip: Collection[str] = (),
    ) -> list[QueuedCall]:
        """Mark up to `limit` due calls running (fair between tenants) under `owner`'s lease.

        Rows another gateway is claiming are skipped, not waited for: each call goes to
        exactly one claimer. A running call whose lease ran out (its gateway died without
        renewing it) is due again.
        """
        async with self._tx() as con:
            rows = await fair_due(con, now, limit, skip)
            if not rows:
                return []
            ids = [r["activation_id"] for r in rows]
            # A call taken over from a lapsed lease lost an attempt with its gateway: count
            # it, so a call that takes gateways down is given up in the end.
            await con.execute(
                "UPDATE queue SET attempts = attempts + CASE WHEN state = 'running' "
                "THEN 1 ELSE 0 END, state = 'running', claimed_by = $2, lease_until = $3 "
                "WHERE activation_id = ANY($1::text[])",
                ids,
                owner,
                float(now + lease_s),
            )
            await con.execute(
                "UPDATE activations SET status = 'running' WHERE id = ANY($1::text[])", ids
            )
        return [
            replace(c, attempts=c.attempts + int(r["state"] == "running"))
            for r, c in ((r, queued_from_row(r)) for r in rows)
        ]

    async def renew(self, owner: str, activation_ids: Sequence[str], until: float) -> None:
        """Extend `owner`'s leases on these running calls."""
        if not activation_ids:
            return
        async with self._tx() as con:
            await con.execute(
                "UPDATE queue SET lease_until = $1 WHERE claimed_by = $2 AND state = 'running' "
                "AND activation_id = ANY($3::text[])",
                float(until),
                owner,
                list(activation_ids),
            )

    async def finish_attempt(
        self,
        activation: Activation,
        usage: Mapping[str, Any] | None,
        retry_at: float | None,
        *,
        owner: str | None = None,
    ) -> None:
        """Record one attempt; requeue the call for `retry_at`, or take it off the queue.

        With `owner`, the queue entry changes only while that gateway still holds the
        claim: one whose lease ran out (another gateway took the call over) records its
        attempt, which is the same attempt and so billed once, and leaves the queue alone.
        """
        async with self._tx() as con:
            await _save_activation(con, activation, usage)
            if retry_at is None:
                await con.execute(
                    "DELETE FROM queue WHERE activation_id = $1 "
                    "AND ($2::text IS NULL OR claimed_by = $2)",
                    activation.id,
                    owner,
                )
            else:
                await con.execute(
                    "UPDATE queue SET state = 'queued', not_before = $1, attempts = $2 "
                    "WHERE activation_id = $3 AND ($4::text IS NULL OR claimed_by = $4)",
                    float(retry_at),
                    activation.attempts,
                    activation.id,
                    owner,
                )

    async def defer(
        self, activation_id: str, not_before: float, *, owner: str | None = None
    ) -> None:
        """Put a claimed call back without counting an attempt (the platform was busy)."""
        async with self._tx() as con:
            status = await con.execute(
                "UPDATE queue SET state = 'queued', not_before = $1 WHERE activation_id = $2 "
                "AND ($3::text IS NULL OR claimed_by = $3)",
                float(not_before),
                activation_id,
                owner,
            )
            if _rowcount(status) == 0:
                return  # another gateway holds it now: its status is that gateway's
            await con.execute(
                "UPDATE activations SET status = 'pending' WHERE id = $1", activation_id
            )

    async def requeue_running(self, owner: str = "") -> int:
        """After a crash: `owner`'s running calls (and unowned ones) go back to the queue.

        Other gateways' running calls stay theirs while their leases hold; a dead gateway's
        are claimed again once its leases run out.
        """
        async with self._tx() as con:
            rows = await con.fetch(
                "UPDATE queue SET state = 'queued', claimed_by = NULL, lease_until = NULL, "
                "attempts = attempts + 1 "  # the attempt that was running is lost: it counts
                "WHERE state = 'running' AND (claimed_by = $1 OR claimed_by IS NULL) "
                "RETURNING activation_id",
                owner,
            )
            ids = [r["activation_id"] for r in rows]
            if ids:
                await con.execute(
                    "UPDATE activations SET status = 'pending' WHERE id = ANY($1::text[])", ids
                )
        return len(ids)

    async def queue_depth(self) -> int:
        """Calls accepted and not yet finished."""
        async with self._conn() as con:
            return int(await con.fetchval("SELECT count(*) FROM queue"))

    async def next_due(self) -> float | None:
        """When the earliest queued call is due, if any."""
        async with self._conn() as con:
            due = await con.fetchval("SELECT min(not_before) FROM queue WHERE state = 'queued'")
        return None if due is None else float(due)

    async def get_activation(self, tenant: str, activation_id: str) -> Activation | None:
        """One activation, only within its tenant."""
        async with self._conn() as con:
            row = await con.fetchrow(
                "SELECT * FROM activations WHERE id = $1 AND tenant = $2", activation_id, tenant
            )
        return None if row is None else activation_from_row(row)

    async def list_activations(
        self, tenant: str, function: str | None, limit: int
    ) -> list[Activation]:
        """A tenant's newest activations first, optionally of one function."""
        async with self._conn() as con:
            if function is None:
                rows = await con.fetch(
                    "SELECT * FROM activations WHERE tenant = $1 ORDER BY seq DESC LIMIT $2",
                    tenant,
                    limit,
                )
            else:
                rows = await con.fetch(
                    "SELECT * FROM activations WHERE tenant = $1 AND function = $2 "
                    "ORDER BY seq DESC LIMIT $3",
                    tenant,
                    function,
                    limit,
                )
        return [activation_from_row(r) for r in rows]

    async def list_usage(
        self, tenant: str | None, start_from: float, start_to: float
    ) -> list[UsageRecord]:
        """Usage records with `start_from <= start < start_to`, of one tenant or (None) all."""
        async with self._conn() as con:
            if tenant is None:
                rows = await con.fetch(
                    "SELECT record FROM usage WHERE start >= $1 AND start < $2 ORDER BY start",
                    float(start_from),
                    float(start_to),
                )
            else:
                rows = await con.fetch(
                    "SELECT record FROM usage WHERE tenant = $1 AND start >= $2 AND start < $3 "
                    "ORDER BY start",
                    tenant,
                    float(start_from),
                    float(start_to),
                )
        return [UsageRecord.from_row(json.loads(r["record"])) for r in rows]

    # nodes

    async def save_node_lease(self, lease: NodeLease) -> None:
        """Insert a node's lease, or set `down_at` on the one already stored."""
        async with self._conn() as con:
            await con.execute(
                "INSERT INTO node_leases (id, flavor, vcpu, memory_mb, price_per_hour, up_at, "
                "down_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (id) DO UPDATE SET down_at = excluded.down_at",
                lease.id,
                lease.flavor,
                float(lease.vcpu),
                lease.memory_mb,
                lease.price_per_hour,
                float(lease.up_at),
                None if lease.down_at is None else float(lease.down_at),
            )

    async def node_leases(self, start_from: float, start_to: float) -> list[NodeLease]:
        """Leases that overlap [start_from, start_to)."""
        async with self._conn() as con:
            rows = await con.fetch(
                "SELECT * FROM node_leases WHERE up_at < $1 AND (down_at IS NULL OR down_at > $2) "
                "ORDER BY up_at",
                float(start_to),
                float(start_from),
            )
        return [
            NodeLease(
                id=r["id"],
                flavor=r["flavor"],
                vcpu=r["vcpu"],
                memory_mb=r["memory_mb"],
                price_per_hour=r["price_per_hour"],
                up_at=r["up_at"],
                down_at=r["down_at"],
            )
            for r in rows
        ]

    # triggers and rules

    async def put_trigger(self, trigger: Trigger) -> bool:
        """Create or replace a trigger (keeping its fire history); True when created."""
        async with self._conn() as con:
            # xmax is 0 only on a freshly inserted row: the one way an upsert tells
            # "created" from "replaced" without a race between two writers.
            inserted = await con.fetchval(
                "INSERT INTO triggers (tenant, name, type, config, secret_hash, last_fire, "
                "created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (tenant, name) DO UPDATE SET type = excluded.type, "
                "config = excluded.config, secret_hash = excluded.secret_hash, "
                "updated = excluded.updated RETURNING (xmax = 0)",
                trigger.tenant,
                trigger.name,
                trigger.type,
                json.dumps(dict(trigger.config), sort_keys=True),
                trigger.secret_hash,
                None if trigger.last_fire is None else float(trigger.last_fire),
                float(trigger.created),
                float(trigger.updated),
            )
        return bool(inserted)

    async def get_trigger(self, tenant: str, name: str) -> Trigger | None:
        """One trigger of one tenant."""
        async with self._conn() as con:
            row = await con.fetchrow(
                "SELECT * FROM triggers WHERE tenant = $1 AND name = $2", tenant, name
            )
        return None if row is None else trigger_from_row(row)

    async def list_triggers(self, tenant: str | None, type_: str | None = None) -> list[Trigger]:
        """A tenant's triggers (None: every tenant's), optionally of one type."""
        async with self._conn() as con:
            rows = await con.fetch(
                "SELECT * FROM triggers WHERE ($1::text IS NULL OR tenant = $1) "
                "AND ($2::text IS NULL OR type = $2) ORDER BY tenant, name",
                tenant,
                type_,
            )
        return [trigger_from_row(r) for r in rows]

    async def trigger_by_secret(self, secret_hash: str) -> Trigger | None:
        """The trigger whose webhook secret hashes to `secret_hash`."""
        async with self._conn() as con:
            row = await con.fetchrow("SELECT * FROM triggers WHERE secret_hash = $1", secret_hash)
        return None if row is None else trigger_from_row(row)

    async def delete_trigger(self, tenant: str, name: str) -> bool:
        """Remove a trigger and the rules that name it."""
        async with self._tx() as con:
            status = await con.execute(
                "DELETE FROM triggers WHERE tenant = $1 AND name = $2", tenant, name
            )
            await con.execute("DELETE FROM rules WHERE tenant = $1 AND trigger = $2", tenant, name)
        return _rowcount(status) == 1

    async def mark_fired(self, tenant: str, name: str, slot: float) -> bool:
        """Claim a schedule slot for firing; False when this or a later slot is claimed."""
        async with self._conn() as con:
            status = await con.execute(
                "UPDATE triggers SET last_fire = $1 WHERE tenant = $2 AND name = $3 "
                "AND (last_fire IS NULL OR last_fire < $1)",
                float(slot),
                tenant,
                name,
            )
        return bool(status.endswith(" 1"))

    async def put_rule(self, rule: Rule) -> bool:
        """Create or replace a rule (keeping its created time); True when created."""
        async with self._conn() as con:
            inserted = await con.fetchval(
                "INSERT INTO rules (tenant, name, trigger, function, enabled, created, updated) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, name) DO UPDATE SET "
                "trigger = excluded.trigger, function = excluded.function, "
                "enabled = excluded.enabled, updated = excluded.updated RETURNING (xmax = 0)",
                rule.tenant,
                rule.name,
                rule.trigger,
                rule.function,
                rule.enabled,
                float(rule.created),
                float(rule.updated),
            )
        return bool(inserted)

    async def get_rule(self, tenant: str, name: str) -> Rule | None:
        """One rule of one tenant."""
        async with self._conn() as con:
            row = await con.fetchrow(
                "SELECT * FROM rules WHERE tenant = $1 AND name = $2", tenant, name
            )
        return None if row is None else rule_from_row(row)

    async def list_rules(self, tenant: str, trigger: str | None = None) -> list[Rule]:
        """A tenant's rules, optionally only those of one trigger."""
        async with self._conn() as con:
            rows = await con.fetch(
                "SELECT * FROM rules WHERE tenant = $1 AND ($2::text IS NULL OR trigger = $2) "
                "ORDER BY name",
                tenant,
                trigger,
            )
        return [rule_from_row(r) for r in rows]

    async def delete_rule(self, tenant: str, name: str) -> bool:
        """Remove a rule."""
        async with self._conn() as con:
            status = await con.execute(
                "DELETE FROM rules WHERE tenant = $1 AND name = $2", tenant, name
            )
        return _rowcount(status) == 1
