"""What SQLite says differently from PostgreSQL in the store's shared SQL.

The statements are written in SQLite's own placeholders, so they run as written. A list
parameter is passed as a JSON array (`invoker.store.sqlite.connection` encodes it) and
read with `json_each`. One connection on one thread is the only writer, so no statement
needs a row lock or an advisory lock.

An activation's result and logs live on overflow pages that SQLite reads in a chain:
queries over many activations read `rowid` (in every index), sizes and times from the
indexes (`schema.ACTIVATIONS_INDEXES`) and never the rows they pass over.
"""

from __future__ import annotations

from invoker.store.sql.statements import Dialect


class SqliteDialect(Dialect):
    """SQLite (3.35 or later: RETURNING; JSON functions built in)."""

    lateral = False
    for_update = ""
    skip_locked = ""
    keeps_nul = True
    row_key = "rowid"
    stored_size = "IFNULL(a.size, 0)"  # filled on open for rows written before it
    # `+` keeps SQLite off the tenant index when finding rows by time: reading a row's time
    # through it would read the row's whole overflow chain (the time comes after the logs).
    tenant_by_time = "+a.tenant"

    def render(self, sql: str) -> str:
        """As written."""
        return sql

    def in_list(self, column: str, param: int) -> str:
        """Membership in the JSON array parameter."""
        return f"{column} IN (SELECT value FROM json_each(?{param}))"

    def list_position(self, column: str, param: int) -> str:
        """The index of `column` in the JSON array parameter."""
        return f"(SELECT key FROM json_each(?{param}) WHERE value = {column})"

    def seq(self) -> tuple[str, str]:
        """One more than the largest: the single writer makes it unique."""
        return ", seq", ", (SELECT COALESCE(MAX(seq), 0) + 1 FROM activations)"
