"""The store seam: everything that must survive a restart goes through `Store`.

`Store` is the sum of the store's kinds, each a protocol in a module of its own with the
types it takes and returns:

| kind | module |
| --- | --- |
| tenants, API keys, shared secrets | `invoker.store.tenants` |
| functions and their code | `invoker.store.functions` |
| functions' versions and aliases | `invoker.store.versions` |
| activations and usage records | `invoker.store.activations` |
| the durable queue of async calls | `invoker.store.queue` |
| triggers and rules | `invoker.store.triggers` |
| node leases | `invoker.store.node_leases` |
| keep-alive state | `invoker.store.keepalive` |
| tenant limits | `invoker.store.limits` |

Code that needs one kind can take that protocol; every name is re-exported here so
`from invoker.store.base import ...` keeps working. The dialects: `invoker.store.sqlite`
(the embedded default) and `invoker.store.postgres`, both running the SQL written once in
`invoker.store.sql`.
"""

from __future__ import annotations

from typing import Protocol

from invoker.store.activations import (
    DELETE_BATCH,
    RECORD_OVERHEAD_BYTES,
    ActivationPage,
    ActivationStore,
    Removal,
    activation_size,
    dumped_size,
    fit_page,
    page_end,
)
from invoker.store.functions import FunctionDraft, FunctionStore, StoredFunction
from invoker.store.keepalive import KeepAliveState, KeepAliveStore
from invoker.store.limits import TenantLimitStore
from invoker.store.node_leases import NodeLease, NodeLeaseStore
from invoker.store.queue import LEASE_S, QueuedCall, QueueStore
from invoker.store.tenants import (
    MAX_KEYS_PER_TENANT,
    DeletedTenant,
    KeyInfo,
    LastKeyError,
    TenantInfo,
    TenantStore,
    TooManyKeysError,
    usage_tombstone,
)
from invoker.store.triggers import Rule, Trigger, TriggerStore
from invoker.store.versions import Alias, MissingVersions, VersionStore

__all__ = [
    "DELETE_BATCH",
    "LEASE_S",
    "MAX_KEYS_PER_TENANT",
    "RECORD_OVERHEAD_BYTES",
    "ActivationPage",
    "ActivationStore",
    "Alias",
    "DeletedTenant",
    "FunctionDraft",
    "FunctionStore",
    "KeepAliveState",
    "KeepAliveStore",
    "KeyInfo",
    "LastKeyError",
    "MissingVersions",
    "NodeLease",
    "NodeLeaseStore",
    "QueueStore",
    "QueuedCall",
    "Removal",
    "Rule",
    "Store",
    "StoredFunction",
    "TenantInfo",
    "TenantLimitStore",
    "TenantStore",
    "TooManyKeysError",
    "Trigger",
    "TriggerStore",
    "VersionStore",
    "activation_size",
    "dumped_size",
    "fit_page",
    "page_end",
    "usage_tombstone",
]


class Store(
    TenantStore,
    FunctionStore,
    VersionStore,
    ActivationStore,
    QueueStore,
    TriggerStore,
    NodeLeaseStore,
    KeepAliveStore,
    TenantLimitStore,
    Protocol,
):
    """Durable state: every kind at once, over one database. Every method is a coroutine
    and never blocks the event loop."""

    async def open(self) -> None:
        """Create the schema if needed."""
        ...

    async def close(self) -> None:
        """Flush and release the database."""
        ...

    async def commit_queued(self) -> None:
        """Commit what is queued behind its callers (`save_activation(..., wait=False)`);
        return once another connection to the database sees it. A store that writes
        before returning has nothing queued."""
        ...
