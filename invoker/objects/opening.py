"""Which object store a gateway uses: the one in the database its store URL names.

- SQLite (the default): metadata in the store's SQLite file, bytes in
  `<data_dir>/object-blobs/` (`LocalBlobs`);
- PostgreSQL: metadata and bytes in that database (`DbBlobs`), so every gateway on it sees
  every bucket and object.
Either way an old per-data-dir object store (`objects.db`) is imported once on open.
"""

from __future__ import annotations

import time
from pathlib import Path

from invoker.objects.db_blobs import DbBlobs
from invoker.objects.local_blobs import LocalBlobs
from invoker.objects.model import Blobs, Clock, EventSink
from invoker.objects.service import ObjectStore
from invoker.objects.sql import Db, SqlObjectMeta
from invoker.objects.sqlite_db import SqliteDb
from invoker.store.location import store_location

BLOB_DIR = "object-blobs"


def open_objects(
    store_url: str | None,
    data_dir: Path,
    *,
    max_object_bytes: int,
    on_event: EventSink | None = None,
    clock: Clock = time.time,
) -> ObjectStore:
    """The object store of the store a URL names (forms as `open_store`), not yet opened:
    the caller awaits `open()` (after the main store's, which creates a new SQLite file
    with its settings) and `close()`. Raises ValueError for a bad URL. Does no I/O."""
    where = store_location(store_url, data_dir)
    db: Db
    blobs: Blobs
    if where.sqlite_path is not None:
        db = SqliteDb(where.sqlite_path)
        blobs = LocalBlobs(data_dir / BLOB_DIR)
    else:
        # Imported here so a SQLite gateway never loads asyncpg.
        from invoker.objects.postgres_db import PostgresDb

        db = PostgresDb(where.postgres_url, schema=where.schema)
        blobs = DbBlobs(db)
    return ObjectStore(
        SqlObjectMeta(db),
        blobs,
        max_object_bytes=max_object_bytes,
        on_event=on_event,
        clock=clock,
        legacy_dir=data_dir,
    )
