"""Reading what a statement returned: its first row, its one value, a dataclass per row.

Both dialects' rows are read by column name or position (`sqlite3.Row`, `asyncpg.Record`);
booleans may come back as 0/1 (SQLite) or bool (PostgreSQL), and JSON columns are text in
both.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from invoker.store.sql.statements import Done

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")

Row = Any
"""A result row, read by column name or position."""


def first(done: Done) -> Row | None:
    """The first row a statement returned, if any."""
    return done.rows[0] if done.rows else None


def scalar(done: Done) -> Any:
    """The first column of the first row a statement returned; None without a row."""
    return done.rows[0][0] if done.rows else None


def from_row(cls: type[D], row: Row, **decoded: Any) -> D:
    """A dataclass from a row whose columns are named like its fields.

    `decoded` gives the fields stored differently (JSON text, a boolean that SQLite
    returns as 0/1, a nested value); a field without a column keeps its default.
    """
    columns = set(row.keys())
    stored = {f.name: row[f.name] for f in fields(cls) if f.name in columns}
    return cls(**(stored | decoded))
