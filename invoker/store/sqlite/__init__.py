"""The SQLite store, the embedded default: one file, one connection on one thread.

`SqliteStore` is every kind's shared SQL (`invoker.store.sql`) over `SqliteConnection`,
with SQLite's write-behind and space reclaim (`activations`). What SQLite says
differently is `dialect`; its tables and upgrades are `schema`.
"""

from __future__ import annotations

from invoker.store.sql.kinds import SqlKinds
from invoker.store.sqlite.activations import SqliteActivations
from invoker.store.sqlite.connection import SqliteConnection

__all__ = ["SqliteStore"]


class SqliteStore(SqliteActivations, SqlKinds, SqliteConnection):
    """The Store protocol over one SQLite file (`SqliteStore(path)`, then `await open()`)."""
