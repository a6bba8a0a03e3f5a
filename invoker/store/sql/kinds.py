"""Every kind of the store in SQL: what a dialect's store class puts over its connection."""

from __future__ import annotations

from invoker.store.sql.activations import SqlActivations
from invoker.store.sql.functions import SqlFunctions
from invoker.store.sql.keepalive import SqlKeepAlive
from invoker.store.sql.limits import SqlLimits
from invoker.store.sql.node_leases import SqlNodeLeases
from invoker.store.sql.queue import SqlQueue
from invoker.store.sql.tenants import SqlTenants
from invoker.store.sql.triggers import SqlTriggers


class SqlKinds(
    SqlTenants,
    SqlFunctions,
    SqlActivations,
    SqlQueue,
    SqlTriggers,
    SqlNodeLeases,
    SqlKeepAlive,
    SqlLimits,
):
    """The `Store` protocol's kinds, still needing a connection (`SqlStore._steps`)."""
