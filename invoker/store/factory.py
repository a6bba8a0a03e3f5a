"""Which store a gateway uses, from one URL in its config."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from invoker.store.base import Store
from invoker.store.sqlite import SqliteStore

DEFAULT_DB_NAME = "nimbus.db"


def open_store(url: str | None, data_dir: Path) -> Store:
    """The store a URL names, not yet opened (the caller awaits `store.open()`).

    - None, "" or "sqlite:": SQLite in `data_dir`/nimbus.db (the embedded default);
    - "sqlite:///abs/path.db" or "sqlite:rel/path.db": SQLite there (relative to `data_dir`);
    - "postgresql://user:password@host:port/db" (or "postgres://"): PostgreSQL, shared by
      every gateway given the same URL; `?nimbus_schema=NAME` keeps the tables in that
      schema (several deployments, or test runs, in one database).

    Raises ValueError for any other scheme. Does no I/O.
    """
    if not url:
        return SqliteStore(data_dir / DEFAULT_DB_NAME)
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise ValueError("store URL has no scheme; use sqlite: or postgresql://")
    scheme = scheme.lower()
    if scheme == "sqlite":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            return SqliteStore(data_dir / DEFAULT_DB_NAME)
        return SqliteStore(data_dir / path)  # an absolute path replaces data_dir
    if scheme in ("postgresql", "postgres"):
        # Imported here so a SQLite gateway never loads asyncpg.
        from invoker.store.postgres import PostgresStore

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "nimbus_schema"), None)
        rest_query = urlencode([(k, v) for k, v in query if k != "nimbus_schema"])
        return PostgresStore(urlunsplit(parts._replace(query=rest_query)), schema=schema)
    # Never echo the URL here: it may carry a password.
    raise ValueError(f"unknown store URL scheme {scheme!r}; use sqlite: or postgresql://")
