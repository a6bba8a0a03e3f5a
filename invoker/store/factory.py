"""Which store a gateway uses, from one URL in its config."""

from __future__ import annotations

from pathlib import Path

from invoker.store.base import Store
from invoker.store.location import store_location
from invoker.store.sqlite import SqliteStore


def open_store(url: str | None, data_dir: Path) -> Store:
    """The store a URL names, not yet opened (the caller awaits `store.open()`).

    - None, "" or "sqlite:": SQLite in `data_dir`/nimbus.db (the embedded default);
    - "sqlite:///abs/path.db" or "sqlite:rel/path.db": SQLite there (relative to `data_dir`);
    - "postgresql://user:password@host:port/db" (or "postgres://"): PostgreSQL, shared by
      every gateway given the same URL; `?nimbus_schema=NAME` keeps the tables in that
      schema (several deployments, or test runs, in one database).

    Raises ValueError for any other scheme. Does no I/O.
    """
    where = store_location(url, data_dir)
    if where.sqlite_path is not None:
        return SqliteStore(where.sqlite_path)
    # Imported here so a SQLite gateway never loads asyncpg.
    from invoker.store.postgres import PostgresStore

    return PostgresStore(where.postgres_url, schema=where.schema)
