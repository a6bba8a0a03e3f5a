"""Where a store URL points, read once for every part that opens the store's database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_DB_NAME = "nimbus.db"


@dataclass(frozen=True)
class StoreLocation:
    """Where a store URL points: a SQLite file, or a PostgreSQL database (and schema)."""

    sqlite_path: Path | None = None
    postgres_url: str = ""
    schema: str | None = None


def store_location(url: str | None, data_dir: Path) -> StoreLocation:
    """Where the store a URL names is (pure; the forms are those of `open_store`).

    Raises ValueError for any other scheme.
    """
    if not url:
        return StoreLocation(sqlite_path=data_dir / DEFAULT_DB_NAME)
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise ValueError("store URL has no scheme; use sqlite: or postgresql://")
    scheme = scheme.lower()
    if scheme == "sqlite":
        path = rest[2:] if rest.startswith("//") else rest
        # An absolute path replaces data_dir.
        return StoreLocation(sqlite_path=data_dir / (path or DEFAULT_DB_NAME))
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "nimbus_schema"), None)
        rest_query = urlencode([(k, v) for k, v in query if k != "nimbus_schema"])
        return StoreLocation(
            postgres_url=urlunsplit(parts._replace(query=rest_query)), schema=schema
        )
    # Never echo the URL here: it may carry a password.
    raise ValueError(f"unknown store URL scheme {scheme!r}; use sqlite: or postgresql://")
