"""SQLite store, the embedded default.

One connection used from one dedicated thread: SQLite serialises writers anyway, and a
single thread keeps every statement off the event loop without locking games. WAL mode
lets readers (a second process, the CLI) look while we write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

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
from invoker.store.errors import StoreFull, is_storage_full
from invoker.store.lifecycle import activation_size
from invoker.store.rows import (
    activation_from_row,
    function_from_row,
    queued_from_row,
    rule_from_row,
    trigger_from_row,
)
from invoker.store.sqlite_activations import SqliteActivations, migrate_activations
from invoker.store.sqlite_limits import SqliteLimits, fair_due, has_room
from invoker.store.sqlite_schema import SCHEMA
from invoker.store.sqlite_tenants import TENANTS_SCHEMA, SqliteTenants

T = TypeVar("T")
log = logging.getLogger("nimbus.store")


def _save_activation(
    db: sqlite3.Connection, activation: Activation, usage: Mapping[str, Any] | None
) -> None:
    """Upsert an activation and, for a finished attempt, append its usage record."""
    a = activation
    result = None if a.result is None else json.dumps(a.result)
    logs = json.dumps(a.logs)
    db.execute(
        "INSERT INTO activations (id, tenant, function, version, status, result, error, "
        "logs, start, end, duration_ms, init_ms, wait_ms, cold_start, memory_mb, node, "
        "trigger, peak_memory_mb, cpu_seconds, attempts, dead_letter, seq, size) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM activations), ?) "
        "ON CONFLICT(id) DO UPDATE SET status=excluded.status, result=excluded.result, "
        "error=excluded.error, logs=excluded.logs, start=excluded.start, "
        "end=excluded.end, duration_ms=excluded.duration_ms, init_ms=excluded.init_ms, "
        "wait_ms=excluded.wait_ms, cold_start=excluded.cold_start, node=excluded.node, "
        "peak_memory_mb=excluded.peak_memory_mb, cpu_seconds=excluded.cpu_seconds, "
        "attempts=excluded.attempts, dead_letter=excluded.dead_letter, size=excluded.size",
        (
            a.id,
            a.tenant,
            a.function,
            a.version,
            a.status.value,
            result,
            a.error,
            logs,
            a.start,
            a.end,
            a.duration_ms,
            a.init_ms,
            a.wait_ms,
            None if a.cold_start is None else int(a.cold_start),
            a.memory_mb,
            a.node,
            a.trigger,
            a.peak_memory_mb,
            a.cpu_seconds,
            a.attempts,
            int(a.dead_letter),
            activation_size(result, logs, a.error),
        ),
    )
    if usage is not None:
        # One usage record per attempt: a retried async call ran (and is billed) each time.
        db.execute(
            "INSERT OR IGNORE INTO usage (activation_id, attempt, tenant, start, record) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                a.id,
                max(1, a.attempts),
                a.tenant,
                usage.get("start", a.start or 0.0),
                json.dumps(dict(usage)),
            ),
        )


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a queued store write failed", exc_info=future.exception())


class SqliteStore(SqliteLimits, SqliteTenants, SqliteActivations):
    """The Store protocol over one SQLite file (tenant limits, tenants and keys, activation
    history from the mixins)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nimbus-sqlite")
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[Activation, Mapping[str, Any] | None]] = []
        self._flush_scheduled = False

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._db is not None, "store is not open"
        try:
            with self._db:  # one transaction per call: commit, or roll back on error
                return fn(self._db)
        except sqlite3.OperationalError as exc:
            if is_storage_full(exc):  # rolled back: callers answer it, not as a bug
                raise StoreFull(str(exc)) from exc
            raise

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._submit_pending()  # queued writes go first, so this call sees them
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._tx, fn)

    def _submit_pending(self) -> None:
        """Hand every queued activation write to the store thread as one transaction."""
        self._flush_scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending, []

        def write(db: sqlite3.Connection) -> None:
            for activation, usage in batch:
                _save_activation(db, activation, usage)

        self._pool.submit(self._tx, write).add_done_callback(_log_failure)

    async def open(self) -> None:
        """Open the file (creating the schema) on the store's own thread."""

        def connect() -> None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            # Before the first table: a new store can give freed pages back (retention).
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
            columns = {r["name"] for r in db.execute("PRAGMA table_info(queue)")}
            for column, kind in (("claimed_by", "TEXT"), ("lease_until", "REAL")):
                if column not in columns:  # a store made before leases
                    db.execute(f"ALTER TABLE queue ADD COLUMN {column} {kind}")
            db.executescript(TENANTS_SCHEMA)
            migrate_activations(db)
            db.isolation_level = "DEFERRED"  # back to implicit transactions for `with db:`
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._pool, connect)

    async def close(self) -> None:
        """Close the database and the store's thread."""

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._submit_pending()
        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=True)

    # functions

    async def put_function(self, draft: FunctionDraft, now: float) -> tuple[StoredFunction, bool]:
        """Store the code blob and the function; `version` grows by one on every update."""
        sha = hashlib.sha256(draft.code).hexdigest()

        def q(db: sqlite3.Connection) -> tuple[StoredFunction, bool]:
            db.execute(
                "INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)", (sha, draft.code)
            )
            old = db.execute(
                "SELECT version, created FROM functions WHERE tenant = ? AND name = ?",
                (draft.tenant, draft.name),
            ).fetchone()
            version = 1 if old is None else old["version"] + 1
            created = now if old is None else old["created"]
            db.execute(
                "INSERT OR REPLACE INTO functions (tenant, name, version, runtime, handler, "
                "code_sha256, code_kind, code_size, memory_mb, timeout_s, concurrency, env, "
                "network, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    draft.tenant,
                    draft.name,
                    version,
                    draft.runtime,
                    draft.handler,
                    sha,
                    draft.code_kind,
                    len(draft.code),
                    draft.memory_mb,
                    draft.timeout_s,
                    draft.concurrency,
                    json.dumps(dict(draft.env), sort_keys=True),
                    int(draft.network),
                    created,
                    now,
                ),
            )
            row = db.execute(
                "SELECT * FROM functions WHERE tenant = ? AND name = ?", (draft.tenant, draft.name)
            ).fetchone()
            return function_from_row(row), old is None

        return await self._run(q)

    async def get_function(self, tenant: str, name: str) -> StoredFunction | None:
        """One function of one tenant."""

        def q(db: sqlite3.Connection) -> StoredFunction | None:
            row = db.execute(
                "SELECT * FROM functions WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            return None if row is None else function_from_row(row)

        return await self._run(q)

    async def list_functions(self, tenant: str) -> list[StoredFunction]:
        """Every function of one tenant, by name."""

        def q(db: sqlite3.Connection) -> list[StoredFunction]:
            rows = db.execute(
                "SELECT * FROM functions WHERE tenant = ? ORDER BY name", (tenant,)
            ).fetchall()
            return [function_from_row(r) for r in rows]

        return await self._run(q)

    async def delete_function(self, tenant: str, name: str) -> bool:
        """Remove a function (its code blob stays while other functions share it)."""

        def q(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM functions WHERE tenant = ? AND name = ?", (tenant, name))
            db.execute("DELETE FROM blobs WHERE sha256 NOT IN (SELECT code_sha256 FROM functions)")
            db.execute("DELETE FROM keepalive WHERE tenant = ? AND function = ?", (tenant, name))
            return cur.rowcount == 1

        return await self._run(q)

    async def save_keepalive(
        self, policy: str, states: Sequence[tuple[str, str, Mapping[str, Any]]], now: float
    ) -> None:
        """Keep (tenant, function, state) snapshots of `policy`, replacing older ones."""

        def q(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO keepalive (policy, tenant, function, state, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                [(policy, t, f, json.dumps(dict(state)), now) for t, f, state in states],
            )

        if states:
            await self._run(q)

    async def load_keepalive(self, policy: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Every (tenant, function, state) snapshot of `policy`."""

        def q(db: sqlite3.Connection) -> list[tuple[str, str, dict[str, Any]]]:
            rows = db.execute(
                "SELECT tenant, function, state FROM keepalive WHERE policy = ?", (policy,)
            )
            return [(r["tenant"], r["function"], json.loads(r["state"])) for r in rows]

        return await self._run(q)

    async def get_code(self, sha256: str) -> bytes | None:
        """A code blob by its content hash."""

        def q(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
            return None if row is None else bytes(row["data"])

        return await self._run(q)

    # activations

    async def save_activation(
        self, activation: Activation, usage: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> None:
        """Insert or replace an activation and, in the same transaction, its usage record.

        `wait=False` queues the write and returns at once (a synchronous call's answer need
        not wait for its record). Every later store call still sees it: one thread runs
        the store's work in submission order.
        """

        def q(db: sqlite3.Connection) -> None:
            _save_activation(db, activation, usage)

        if wait:
            await self._run(q)
            return
        # Group commit: writes queued in one turn of the loop share a transaction, so under
        # load the store thread wakes once per batch instead of once per call.
        self._pending.append((activation, usage))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._submit_pending)

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

        def q(db: sqlite3.Connection) -> bool:
            if calls and not has_room(db, calls[0][0].tenant, len(calls), backlog):
                return False
            for activation, args in calls:
                _save_activation(db, activation, None)
                db.execute(
                    "INSERT INTO queue (activation_id, tenant, function, args, trigger, "
                    "attempts, not_before, state, created) VALUES (?,?,?,?,?,0,?, 'queued', ?)",
                    (
                        activation.id,
                        activation.tenant,
                        activation.function,
                        json.dumps(dict(args)),
                        activation.trigger,
                        not_before,
                        not_before,
                    ),
                )
            return True

        return await self._run(q)

    async def claim(
        self,
        now: float,
        limit: int,
        *,
        owner: str = "",
        lease_s: float = LEASE_S,
        skip: Collection[str] = (),
    ) -> list[QueuedCall]:
        """Mark up to `limit` due calls running (fair between tenants) under a lease."""

        def q(db: sqlite3.Connection) -> list[QueuedCall]:
            rows = fair_due(db, now, limit, skip)
            out = []
            for r in rows:
                # A call taken over from a lapsed lease lost an attempt with its gateway:
                # count it, so a call that takes gateways down is given up in the end.
                lost = int(r["state"] == "running")
                db.execute(
                    "UPDATE queue SET state = 'running', claimed_by = ?, lease_until = ?, "
                    "attempts = attempts + ? WHERE activation_id = ?",
                    (owner, now + lease_s, lost, r["activation_id"]),
                )
                db.execute(
                    "UPDATE activations SET status = 'running' WHERE id = ?",
                    (r["activation_id"],),
                )
                call = queued_from_row(r)
                out.append(replace(call, attempts=call.attempts + lost))
            return out

        return await self._run(q)

    async def renew(self, owner: str, activation_ids: Sequence[str], until: float) -> None:
        """Extend `owner`'s leases on these running calls."""

        def q(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE queue SET lease_until = ? "
                "WHERE activation_id = ? AND claimed_by = ? AND state = 'running'",
                [(until, aid, owner) for aid in activation_ids],
            )

        if activation_ids:
            await self._run(q)

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
        mine = "activation_id = ? AND (? IS NULL OR claimed_by = ?)"

        def q(db: sqlite3.Connection) -> None:
            _save_activation(db, activation, usage)
            if retry_at is None:
                db.execute(f"DELETE FROM queue WHERE {mine}", (activation.id, owner, owner))
            else:
                db.execute(
                    f"UPDATE queue SET state = 'queued', not_before = ?, attempts = ? WHERE {mine}",
                    (retry_at, activation.attempts, activation.id, owner, owner),
                )

        await self._run(q)

    async def defer(
        self, activation_id: str, not_before: float, *, owner: str | None = None
    ) -> None:
        """Put a claimed call back without counting an attempt (the platform was busy)."""

        def q(db: sqlite3.Connection) -> None:
            cur = db.execute(
                "UPDATE queue SET state = 'queued', not_before = ? "
                "WHERE activation_id = ? AND (? IS NULL OR claimed_by = ?)",
                (not_before, activation_id, owner, owner),
            )
            if cur.rowcount == 0:
                return  # another gateway holds it now: its status is that gateway's
            db.execute("UPDATE activations SET status = 'pending' WHERE id = ?", (activation_id,))

        await self._run(q)

    async def requeue_running(self, owner: str = "") -> int:
        """After a crash: `owner`'s running calls (and unowned ones) go back to the queue."""

        def q(db: sqlite3.Connection) -> int:
            mine = "state = 'running' AND (claimed_by = ? OR claimed_by IS NULL)"
            ids = [
                r["activation_id"]
                for r in db.execute(f"SELECT activation_id FROM queue WHERE {mine}", (owner,))
            ]
            for activation_id in ids:
                db.execute(
                    "UPDATE activations SET status = 'pending' WHERE id = ?", (activation_id,)
                )
            db.execute(  # the attempt that was running is lost: it counts
                f"UPDATE queue SET state = 'queued', claimed_by = NULL, lease_until = NULL, "
                f"attempts = attempts + 1 WHERE {mine}",
                (owner,),
            )
            return len(ids)

        return await self._run(q)

    async def queue_depth(self) -> int:
        """Calls accepted and not yet finished."""

        def q(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

        return await self._run(q)

    async def next_due(self) -> float | None:
        """When the earliest queued call is due, if any."""

        def q(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT MIN(not_before) FROM queue WHERE state = 'queued'").fetchone()
            return None if row[0] is None else float(row[0])

        return await self._run(q)

    async def get_activation(self, tenant: str, activation_id: str) -> Activation | None:
        """One activation, only within its tenant."""

        def q(db: sqlite3.Connection) -> Activation | None:
            row = db.execute(
                "SELECT * FROM activations WHERE id = ? AND tenant = ?", (activation_id, tenant)
            ).fetchone()
            return None if row is None else activation_from_row(row)

        return await self._run(q)

    async def list_activations(
        self, tenant: str, function: str | None, limit: int
    ) -> list[Activation]:
        """A tenant's newest activations first, optionally of one function."""

        def q(db: sqlite3.Connection) -> list[Activation]:
            if function is None:
                rows = db.execute(
                    "SELECT * FROM activations WHERE tenant = ? ORDER BY seq DESC LIMIT ?",
                    (tenant, limit),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM activations WHERE tenant = ? AND function = ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (tenant, function, limit),
                ).fetchall()
            return [activation_from_row(r) for r in rows]

        return await self._run(q)

    async def list_usage(
        self, tenant: str | None, start_from: float, start_to: float
    ) -> list[UsageRecord]:
        """Usage records with `start_from <= start < start_to`, of one tenant or (None) all."""

        def q(db: sqlite3.Connection) -> list[UsageRecord]:
            if tenant is None:
                rows = db.execute(
                    "SELECT record FROM usage WHERE start >= ? AND start < ? ORDER BY start",
                    (start_from, start_to),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT record FROM usage WHERE tenant = ? AND start >= ? AND start < ? "
                    "ORDER BY start",
                    (tenant, start_from, start_to),
                ).fetchall()
            return [UsageRecord.from_row(json.loads(r["record"])) for r in rows]

        return await self._run(q)

    async def save_node_lease(self, lease: NodeLease) -> None:
        """Insert or update a node's lease."""

        def q(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO node_leases (id, flavor, vcpu, memory_mb, price_per_hour, up_at, "
                "down_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "down_at=excluded.down_at",
                (
                    lease.id,
                    lease.flavor,
                    lease.vcpu,
                    lease.memory_mb,
                    lease.price_per_hour,
                    lease.up_at,
                    lease.down_at,
                ),
            )

        await self._run(q)

    async def node_leases(self, start_from: float, start_to: float) -> list[NodeLease]:
        """Leases that overlap [start_from, start_to)."""

        def q(db: sqlite3.Connection) -> list[NodeLease]:
            rows = db.execute(
                "SELECT * FROM node_leases WHERE up_at < ? AND (down_at IS NULL OR down_at > ?) "
                "ORDER BY up_at",
                (start_to, start_from),
            ).fetchall()
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

        return await self._run(q)

    # triggers and rules

    async def put_trigger(self, trigger: Trigger) -> bool:
        """Create or replace a trigger (keeping its fire history); True when created."""

        def q(db: sqlite3.Connection) -> bool:
            old = db.execute(
                "SELECT created, last_fire FROM triggers WHERE tenant = ? AND name = ?",
                (trigger.tenant, trigger.name),
            ).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO triggers (tenant, name, type, config, secret_hash, "
                "last_fire, created, updated) VALUES (?,?,?,?,?,?,?,?)",
                (
                    trigger.tenant,
                    trigger.name,
                    trigger.type,
                    json.dumps(dict(trigger.config), sort_keys=True),
                    trigger.secret_hash,
                    old["last_fire"] if old is not None else trigger.last_fire,
                    old["created"] if old is not None else trigger.created,
                    trigger.updated,
                ),
            )
            return old is None

        return await self._run(q)

    async def get_trigger(self, tenant: str, name: str) -> Trigger | None:
        """One trigger of one tenant."""

        def q(db: sqlite3.Connection) -> Trigger | None:
            row = db.execute(
                "SELECT * FROM triggers WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            return None if row is None else trigger_from_row(row)

        return await self._run(q)

    async def list_triggers(self, tenant: str | None, type_: str | None = None) -> list[Trigger]:
        """A tenant's triggers (None: every tenant's), optionally of one type."""

        def q(db: sqlite3.Connection) -> list[Trigger]:
            sql, args = "SELECT * FROM triggers WHERE 1=1", list[str]()
            if tenant is not None:
                sql, args = sql + " AND tenant = ?", [*args, tenant]
            if type_ is not None:
                sql, args = sql + " AND type = ?", [*args, type_]
            rows = db.execute(sql + " ORDER BY tenant, name", args).fetchall()
            return [trigger_from_row(r) for r in rows]

        return await self._run(q)

    async def trigger_by_secret(self, secret_hash: str) -> Trigger | None:
        """The trigger whose webhook secret hashes to `secret_hash`."""

        def q(db: sqlite3.Connection) -> Trigger | None:
            row = db.execute(
                "SELECT * FROM triggers WHERE secret_hash = ?", (secret_hash,)
            ).fetchone()
            return None if row is None else trigger_from_row(row)

        return await self._run(q)

    async def delete_trigger(self, tenant: str, name: str) -> bool:
        """Remove a trigger and the rules that name it."""

        def q(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM triggers WHERE tenant = ? AND name = ?", (tenant, name))
            db.execute("DELETE FROM rules WHERE tenant = ? AND trigger = ?", (tenant, name))
            return cur.rowcount == 1

        return await self._run(q)

    async def mark_fired(self, tenant: str, name: str, slot: float) -> bool:
        """Claim a schedule slot for firing; False when this or a later slot is claimed."""

        def q(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE triggers SET last_fire = ? WHERE tenant = ? AND name = ? "
                "AND (last_fire IS NULL OR last_fire < ?)",
                (slot, tenant, name, slot),
            )
            return cur.rowcount == 1

        return await self._run(q)

    async def put_rule(self, rule: Rule) -> bool:
        """Create or replace a rule; True when created."""

        def q(db: sqlite3.Connection) -> bool:
            old = db.execute(
                "SELECT created FROM rules WHERE tenant = ? AND name = ?", (rule.tenant, rule.name)
            ).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO rules (tenant, name, trigger, function, enabled, created, "
                "updated) VALUES (?,?,?,?,?,?,?)",
                (
                    rule.tenant,
                    rule.name,
                    rule.trigger,
                    rule.function,
                    int(rule.enabled),
                    old["created"] if old is not None else rule.created,
                    rule.updated,
                ),
            )
            return old is None

        return await self._run(q)

    async def get_rule(self, tenant: str, name: str) -> Rule | None:
        """One rule of one tenant."""

        def q(db: sqlite3.Connection) -> Rule | None:
            row = db.execute(
                "SELECT * FROM rules WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            return None if row is None else rule_from_row(row)

        return await self._run(q)

    async def list_rules(self, tenant: str, trigger: str | None = None) -> list[Rule]:
        """A tenant's rules, optionally only those of one trigger."""

        def q(db: sqlite3.Connection) -> list[Rule]:
            if trigger is None:
                rows = db.execute(
                    "SELECT * FROM rules WHERE tenant = ? ORDER BY name", (tenant,)
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM rules WHERE tenant = ? AND trigger = ? ORDER BY name",
                    (tenant, trigger),
                ).fetchall()
            return [rule_from_row(r) for r in rows]

        return await self._run(q)

    async def delete_rule(self, tenant: str, name: str) -> bool:
        """Remove a rule."""

        def q(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM rules WHERE tenant = ? AND name = ?", (tenant, name))
            return cur.rowcount == 1

        return await self._run(q)
