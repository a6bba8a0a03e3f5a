"""The PostgreSQL store's tables (`invoker.store.sql.schema` in PostgreSQL's types), its own
indexes, and the columns a store made by an older version gains.

Run on open in one transaction under the schema lock (`PostgresConnection.open`):
concurrent CREATE ... IF NOT EXISTS can still collide in the catalog.
"""

from __future__ import annotations

from invoker.store.sql.schema import (
    KEYS_BACKFILL,
    VERSIONS_BACKFILL,
    ColumnTypes,
    later_columns,
    queue_columns,
    tables,
)

TYPES = ColumnTypes(
    real="DOUBLE PRECISION",
    blob="BYTEA",
    boolean="BOOLEAN",
    false="FALSE",
    bigint="BIGINT",
    seq="BIGINT GENERATED ALWAYS AS IDENTITY",
)

_QUEUE_UPGRADES = "".join(
    f"ALTER TABLE queue ADD COLUMN IF NOT EXISTS {column} {kind};\n"
    for column, kind in queue_columns(TYPES)
)

_UPGRADES = """
ALTER TABLE activations ADD COLUMN IF NOT EXISTS size BIGINT;
CREATE INDEX IF NOT EXISTS activations_by_tenant ON activations (tenant, function, seq);
CREATE INDEX IF NOT EXISTS activations_by_tenant_seq ON activations (tenant, seq);
CREATE INDEX IF NOT EXISTS activations_by_time ON activations ((COALESCE(start, "end")));
"""

_FUNCTION_UPGRADES = "".join(
    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind};\n"
    for table, column, kind in later_columns(TYPES)
)

SCHEMA = (
    tables(TYPES)
    + _QUEUE_UPGRADES
    + _UPGRADES
    + _FUNCTION_UPGRADES
    + VERSIONS_BACKFILL
    + KEYS_BACKFILL
)
"""Everything `open` runs, in order."""
