"""The store seam: everything that must survive a restart goes through this Protocol."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from invoker.api import Activation, FunctionSpec
from invoker.metering import UsageRecord
from invoker.store.lifecycle import LifecycleStore
from invoker.tenant_limits import TenantLimits

LEASE_S = 30.0
"""How long a claimed async call is its gateway's without a renewal (renewed every third)."""


@dataclass(frozen=True)
class StoredFunction:
    """A function's current version as stored, with its bookkeeping times."""

    spec: FunctionSpec
    created: float
    updated: float
    code_size: int

    def to_json(self) -> dict[str, Any]:
        """The function as the HTTP API shows it (never its code)."""
        s = self.spec
        return {
            "name": s.name,
            "version": s.version,
            "runtime": s.runtime,
            "handler": s.handler,
            "code_sha256": s.code_sha256,
            "code_kind": s.code_kind,
            "code_size": self.code_size,
            "memory_mb": s.memory_mb,
            "timeout_s": s.timeout_s,
            "concurrency": s.concurrency,
            "env": dict(s.env),
            "network": s.network,
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class NodeLease:
    """One node (VM) and the time it was provisioned: what the provider pays for."""

    id: str
    flavor: str
    vcpu: float
    memory_mb: int
    price_per_hour: str  # a decimal string, exact
    up_at: float
    down_at: float | None = None


@dataclass(frozen=True)
class Trigger:
    """A source of events: http (fired by POST or a webhook), schedule (cron) or bucket."""

    tenant: str
    name: str
    type: str
    config: Mapping[str, Any]
    secret_hash: str | None  # the webhook secret's hash, for http triggers with a webhook
    last_fire: float | None
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        """As the API shows it (never the secret)."""
        return {
            "name": self.name,
            "type": self.type,
            **dict(self.config),
            "webhook": self.secret_hash is not None,
            "last_fire": self.last_fire,
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class Rule:
    """When `trigger` fires, call `function` asynchronously with the event."""

    tenant: str
    name: str
    trigger: str
    function: str
    enabled: bool
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "name": self.name,
            "trigger": self.trigger,
            "function": self.function,
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class QueuedCall:
    """An accepted async call waiting in (or claimed from) the durable queue."""

    activation_id: str
    tenant: str
    function: str
    args: Mapping[str, Any]
    trigger: str | None
    attempts: int  # attempts already made
    created: float


@dataclass(frozen=True)
class FunctionDraft:
    """A validated deployment, before the store assigns its version."""

    tenant: str
    name: str
    runtime: str
    handler: str
    code_kind: str
    code: bytes
    memory_mb: int
    timeout_s: float
    concurrency: int
    env: Mapping[str, str]
    network: bool


class Store(LifecycleStore, Protocol):
    """Durable state. Every method is a coroutine and never blocks the event loop.

    Tenant deletion, API keys and activation history are `LifecycleStore`'s.
    """

    async def open(self) -> None:
        """Create the schema if needed."""
        ...

    async def close(self) -> None:
        """Flush and release the database."""
        ...

    # tenants
    async def create_tenant(self, name: str, key_hash: str) -> bool:
        """Add a tenant; False when the name is taken."""
        ...

    async def tenant_for_key(self, key_hash: str) -> str | None:
        """The tenant whose API key (any of its keys) hashes to `key_hash`."""
        ...

    # functions and code
    async def put_function(self, draft: FunctionDraft, now: float) -> tuple[StoredFunction, bool]:
        """Create or update; returns the stored function and whether it was created."""
        ...

    async def get_function(self, tenant: str, name: str) -> StoredFunction | None:
        """One function of one tenant."""
        ...

    async def list_functions(self, tenant: str) -> list[StoredFunction]:
        """Every function of one tenant, by name."""
        ...

    async def delete_function(self, tenant: str, name: str) -> bool:
        """Remove a function (and what keep-alive learned of it); False when it did not exist."""
        ...

    # what the keep-alive policy learned, so a restart does not start from nothing
    async def save_keepalive(
        self, policy: str, states: Sequence[tuple[str, str, Mapping[str, Any]]], now: float
    ) -> None:
        """Keep (tenant, function, state) snapshots of `policy`, replacing older ones."""
        ...

    async def load_keepalive(self, policy: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Every (tenant, function, state) snapshot of `policy`."""
        ...

    async def get_code(self, sha256: str) -> bytes | None:
        """A code blob by its content hash."""
        ...

    # activations (and, in the same transaction, their usage records)
    async def save_activation(
        self, activation: Activation, usage: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> None:
        """Insert or replace an activation, with its usage record when it has ended.

        `wait=False` may return before the write is durable; later store calls see it.
        """
        ...

    # the durable queue of async calls
    async def enqueue(
        self,
        activation: Activation,
        args: Mapping[str, Any],
        not_before: float,
        *,
        backlog: int | None = None,
    ) -> bool:
        """Accept an async call: its pending activation and its queue entry, atomically.

        With `backlog`, only while the tenant's calls queued or running stay within it:
        False, and nothing stored, when the call would pass it.
        """
        ...

    async def enqueue_all(
        self,
        calls: Sequence[tuple[Activation, Mapping[str, Any]]],
        not_before: float,
        *,
        backlog: int | None = None,
    ) -> bool:
        """Accept several calls of one tenant atomically: all, or (past `backlog`) none."""
        ...

    async def queue_backlog(self, tenant: str) -> int:
        """The tenant's async calls queued or running."""
        ...

    async def claim(
        self,
        now: float,
        limit: int,
        *,
        owner: str = "",
        lease_s: float = LEASE_S,
        skip: Collection[str] = (),
    ) -> list[QueuedCall]:
        """Mark up to `limit` due calls running, fair between tenants, and return them.

        The order is `invoker.fairness.fair_order`: the tenant with the fewest calls
        running goes first, each tenant's calls oldest first. `skip`'s tenants get none.

        Each claim is a lease of `lease_s` held by `owner` (a gateway), which renews it while
        the call runs; a running call whose lease ran out (its gateway died) is due again.
        """
        ...

    async def renew(self, owner: str, activation_ids: Sequence[str], until: float) -> None:
        """Extend `owner`'s leases on these running calls to `until`."""
        ...

    async def finish_attempt(
        self,
        activation: Activation,
        usage: Mapping[str, Any] | None,
        retry_at: float | None,
        *,
        owner: str | None = None,
    ) -> None:
        """Record one attempt; requeue the call for `retry_at`, or take it off the queue.

        With `owner`, the queue entry changes only while that gateway holds the claim.
        """
        ...

    async def defer(
        self, activation_id: str, not_before: float, *, owner: str | None = None
    ) -> None:
        """Put a claimed call back without counting an attempt (only while `owner` holds it)."""
        ...

    async def requeue_running(self, owner: str = "") -> int:
        """After a crash: calls `owner` (or nobody on record) had running go back to the queue.

        Other gateways' running calls are theirs while their leases hold.
        """
        ...

    async def queue_depth(self) -> int:
        """Calls accepted and not yet finished."""
        ...

    async def next_due(self) -> float | None:
        """When the earliest queued call is due, if any."""
        ...

    # limits an admin sets per tenant (None fields: the platform default)
    async def get_tenant_limits(self, tenant: str) -> TenantLimits | None:
        """What an admin set for the tenant (fields None: defaults); None: no such tenant."""
        ...

    async def list_tenant_limits(self) -> dict[str, TenantLimits]:
        """Every tenant's limits that an admin set."""
        ...

    async def put_tenant_limits(self, tenant: str, limits: TenantLimits, now: float) -> bool:
        """Replace the tenant's limits; False (nothing stored) when there is no such tenant."""
        ...

    async def add_dropped_events(self, tenant: str, count: int, now: float) -> None:
        """Count trigger events dropped because the tenant's backlog was full."""
        ...

    async def dropped_events(self, tenant: str) -> int:
        """Trigger events dropped so far because the tenant's backlog was full."""
        ...

    async def get_activation(self, tenant: str, activation_id: str) -> Activation | None:
        """One activation, only within its tenant."""
        ...

    async def list_activations(
        self, tenant: str, function: str | None, limit: int
    ) -> list[Activation]:
        """A tenant's newest activations first, optionally of one function."""
        ...

    async def list_usage(
        self, tenant: str | None, start_from: float, start_to: float
    ) -> list[UsageRecord]:
        """Usage records with `start_from <= start < start_to`, of one tenant or (None) all."""
        ...

    # nodes, for the provider's economics
    async def save_node_lease(self, lease: NodeLease) -> None:
        """Insert or update a node's lease (set `down_at` when it is released)."""
        ...

    async def node_leases(self, start_from: float, start_to: float) -> list[NodeLease]:
        """Leases that overlap [start_from, start_to)."""
        ...

    # triggers and rules
    async def put_trigger(self, trigger: Trigger) -> bool:
        """Create or replace a trigger (keeping its fire history); True when created."""
        ...

    async def get_trigger(self, tenant: str, name: str) -> Trigger | None:
        """One trigger of one tenant."""
        ...

    async def list_triggers(self, tenant: str | None, type_: str | None = None) -> list[Trigger]:
        """A tenant's triggers (None: every tenant's), optionally of one type."""
        ...

    async def trigger_by_secret(self, secret_hash: str) -> Trigger | None:
        """The trigger whose webhook secret hashes to `secret_hash`."""
        ...

    async def delete_trigger(self, tenant: str, name: str) -> bool:
        """Remove a trigger and the rules that name it."""
        ...

    async def mark_fired(self, tenant: str, name: str, slot: float) -> bool:
        """Claim a schedule slot for firing; False when this or a later slot is claimed
        (another gateway fired it, or a later one), so a slot fires once and never moves
        the trigger's last fire backwards."""
        ...

    async def put_rule(self, rule: Rule) -> bool:
        """Create or replace a rule; True when created."""
        ...

    async def get_rule(self, tenant: str, name: str) -> Rule | None:
        """One rule of one tenant."""
        ...

    async def list_rules(self, tenant: str, trigger: str | None = None) -> list[Rule]:
        """A tenant's rules, optionally only those of one trigger."""
        ...

    async def delete_rule(self, tenant: str, name: str) -> bool:
        """Remove a rule."""
        ...
