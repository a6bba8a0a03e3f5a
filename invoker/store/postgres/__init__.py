"""The PostgreSQL store, for several gateways sharing one database.

`PostgresStore` is every kind's shared SQL (`invoker.store.sql`) over
`PostgresConnection`, an asyncpg pool. What several writers at once need said differently
is `dialect`; its tables and upgrades are `schema`. Importing this package loads asyncpg:
a SQLite gateway never does (`invoker.store.factory`).
"""

from __future__ import annotations

from invoker.store.postgres.connection import PostgresConnection
from invoker.store.sql.kinds import SqlKinds

__all__ = ["PostgresStore"]


class PostgresStore(SqlKinds, PostgresConnection):
    """The Store protocol over a PostgreSQL database (`PostgresStore(url, schema=...)`)."""
