"""What PostgreSQL says differently from SQLite in the store's shared SQL.

Several gateways write at once, so: a claim locks its rows and skips rows another gateway
holds (`FOR UPDATE SKIP LOCKED`), key changes lock the tenant's row, and two advisory
locks serialise what row locks cannot: code-blob collection against deploys (the blob
lock, held shared by deploys) and concurrent enqueues of one tenant against its backlog.

Large results and logs are TOASTed (stored out of line), so reading an activation's size
or time never reads them; `octet_length` of a TOASTed value reads its header only.
"""

from __future__ import annotations

import functools
import hashlib
import re

from invoker.store.sql.statements import Dialect, Stmt, command

# One lock per tenant (and schema: tests share a database), held to the end of the
# enqueueing transaction, so concurrent enqueues of one tenant cannot both pass the count.
_BACKLOG_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "'nimbus.backlog:' || current_schema() || ':' || ?1, 0))"
)


def lock_key(label: str) -> int:
    """A stable signed 64-bit advisory-lock key."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big", signed=True)


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    return re.sub(r"\?(\d+)", r"$\1", sql)


class PostgresDialect(Dialect):
    """PostgreSQL, for the tables in `schema` (None: the connection's search path)."""

    lateral = True  # a correlated IN would run once per (tenant, call) pair
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    keeps_nul = False
    row_key = "id"
    # Rows written before the `size` column have none (never backfilled): measured instead.
    stored_size = (
        "COALESCE(a.size, COALESCE(octet_length(a.result), 0) + octet_length(a.logs) "
        "+ COALESCE(octet_length(a.error), 0))"
    )
    tenant_by_time = "a.tenant"

    def __init__(self, schema: str | None) -> None:
        self._blob_lock = lock_key(f"nimbus.blobs:{schema or ''}")

    def render(self, sql: str) -> str:
        """`?N` as `$N`."""
        return _numbered(sql)

    def in_list(self, column: str, param: int) -> str:
        """Membership in the text array parameter."""
        return f"{column} = ANY(?{param}::text[])"

    def list_position(self, column: str, param: int) -> str:
        """The position of `column` in the text array parameter."""
        return f"array_position(?{param}::text[], {column})"

    def seq(self) -> tuple[str, str]:
        """`seq` is an identity column: the database numbers new rows."""
        return "", ""

    def blob_lock(self, *, shared: bool) -> tuple[Stmt, ...]:
        """The blob lock, to the end of the transaction."""
        take = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        return (command(f"SELECT {take}(?1)", self._blob_lock),)

    def backlog_lock(self, tenant: str) -> tuple[Stmt, ...]:
        """The tenant's enqueue lock, to the end of the transaction."""
        return (command(_BACKLOG_LOCK, tenant),)
