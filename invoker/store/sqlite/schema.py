"""The SQLite store's tables (`invoker.store.sql.schema` in SQLite's types), its own indexes,
and what `migrate` brings up to date in a store made by an older version."""

from __future__ import annotations

import sqlite3

from invoker.store.sql.schema import (
    KEYS_BACKFILL,
    VERSIONS_BACKFILL,
    ColumnTypes,
    later_columns,
    queue_columns,
    tables,
)

WAL_LIMIT_BYTES = 64 * 2**20
"""The write-ahead log is cut back to this after a checkpoint (moving pages grows it)."""

TYPES = ColumnTypes(
    real="REAL",
    blob="BLOB",
    boolean="INTEGER",
    false="0",
    bigint="INTEGER",
    seq="INTEGER NOT NULL",  # `SqliteDialect.seq`: one more than the largest
)

# `size` and `seq` in the page indexes: sizes are read without touching a row. The time
# index matches `Dialect.activation_time` exactly, or SQLite would not use it.
ACTIVATIONS_INDEXES = """
CREATE INDEX IF NOT EXISTS activations_by_seq ON activations (seq);
DROP INDEX IF EXISTS activations_by_tenant; -- (tenant, function, seq): a prefix of the second
CREATE INDEX IF NOT EXISTS activations_page ON activations (tenant, seq, size);
CREATE INDEX IF NOT EXISTS activations_page_by_function
    ON activations (tenant, function, seq, size);
CREATE INDEX IF NOT EXISTS activations_by_time ON activations (COALESCE(start, "end"), tenant);
"""
_BACKFILL_SIZE = (
    "UPDATE activations SET size = "
    "IFNULL(length(CAST(result AS BLOB)), 0) + length(CAST(logs AS BLOB)) "
    "+ IFNULL(length(CAST(error AS BLOB)), 0) WHERE size IS NULL"
)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def migrate(db: sqlite3.Connection) -> None:
    """Create the tables, and bring a store made by an older version up to date.

    On open, in autocommit mode: the later columns of the queue (`queue_columns`: its
    leases and its calls' owners) and of the functions and their versions
    (`later_columns`), a version for each function made
    before versions (`VERSIONS_BACKFILL`), the activations' `size` column (filled once
    for older rows), key rows for older tenants, and the indexes.
    """
    db.executescript(tables(TYPES))
    queue = _columns(db, "queue")
    for column, kind in queue_columns(TYPES):
        if column not in queue:  # a store made before leases, or before workers
            db.execute(f"ALTER TABLE queue ADD COLUMN {column} {kind}")
    present = {table: _columns(db, table) for table in ("functions", "function_versions")}
    for table, column, kind in later_columns(TYPES):
        if column not in present[table]:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    db.executescript(VERSIONS_BACKFILL)  # after the columns it copies
    if "size" not in _columns(db, "activations"):
        db.execute("ALTER TABLE activations ADD COLUMN size INTEGER")
        db.execute(_BACKFILL_SIZE)  # once: every later write sets it
    db.executescript(KEYS_BACKFILL)
    db.executescript(ACTIVATIONS_INDEXES)
    db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
