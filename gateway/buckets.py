"""The built-in object store of the embedded default: buckets of objects per tenant.

Object bytes live as files under ``<data_dir>/objects/``; their metadata lives in SQLite, in
its own file ``<data_dir>/objects.db`` used from one dedicated thread (as the main store does).

Crash order, so that no metadata row ever points to a missing file:
- a put writes a new, uniquely named file (temp file, fsync, rename, fsync of the directory)
  *before* the row that names it commits; the file it replaces is unlinked only *after*;
- a delete commits the row's removal first and unlinks the file after.
A crash between the steps leaves at worst an orphan file, which `open()` sweeps away.
Unlinks run on the database thread right after their commit, and opening an object for
reading reads its row and opens its file in one job on that same thread, so a reader never
sees a row whose file a concurrent replace has just removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, TypeVar

from aiohttp import web

from gateway.bucket_names import (
    MAX_LIST_LIMIT,
    BucketNotEmpty,
    InvalidInput,
    NoSuchBucket,
    check_bucket_name,
    check_content_type,
    check_key,
    check_limit,
    check_prefix,
    prefix_upper_bound,
)

log = logging.getLogger("nimbus.buckets")

T = TypeVar("T")

MAX_OBJECT_BYTES = 32 * 2**20
SHARD = re.compile(r"^[0-9a-f]{2}$")
TMP_DIR = "tmp"

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS objects (
    tenant TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    file TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (tenant, bucket, key),
    FOREIGN KEY (tenant, bucket) REFERENCES buckets (tenant, name)
);
"""


# values


@dataclass(frozen=True)
class BucketInfo:
    """A bucket of one tenant."""

    name: str
    created: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created}


@dataclass(frozen=True)
class ObjectInfo:
    """An object's metadata; `etag` is the SHA-256 of its bytes, in hex."""

    bucket: str
    key: str
    size: int
    content_type: str
    etag: str
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "content_type": self.content_type,
            "etag": self.etag,
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class ObjectPage:
    """One page of a listing; `next_start_after` is set when more keys follow."""

    objects: tuple[ObjectInfo, ...]
    next_start_after: str | None

    @property
    def truncated(self) -> bool:
        return self.next_start_after is not None


def object_event(kind: str, info: ObjectInfo, now: float) -> dict[str, Any]:
    """The event a put (`object.created`) or delete (`object.deleted`) of `info` emits."""
    return {
        "type": kind,
        "bucket": info.bucket,
        "key": info.key,
        "size": info.size,
        "content_type": info.content_type,
        "etag": info.etag,
        "time": now,
    }


def _object_from_row(row: sqlite3.Row) -> ObjectInfo:
    return ObjectInfo(
        bucket=row["bucket"],
        key=row["key"],
        size=row["size"],
        content_type=row["content_type"],
        etag=row["sha256"],
        created=row["created"],
        updated=row["updated"],
    )


OBJECT_COLUMNS = "bucket, key, size, content_type, sha256, file, created, updated"


def _has_bucket(db: sqlite3.Connection, tenant: str, bucket: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM buckets WHERE tenant = ? AND name = ?", (tenant, bucket)
    ).fetchone()
    return row is not None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# the store


class BucketStore:
    """Buckets and objects of every tenant: files on disk, metadata in SQLite."""

    def __init__(
        self,
        data_dir: Path,
        *,
        on_event: EventSink | None = None,
        max_object_bytes: int = MAX_OBJECT_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db_path = data_dir / "objects.db"
        self._root = data_dir / "objects"
        self._on_event = on_event
        self.max_object_bytes = max_object_bytes
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._db_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nimbus-objects-db")
        # Writing and hashing object bytes must not wait behind metadata queries, nor block them.
        self._io_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nimbus-objects-io")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the database thread; it opens its own transaction (`with db:`)."""

        def call() -> T:
            assert self._db is not None, "bucket store is not open"
            return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._db_pool, call)

    async def _io(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, fn)

    async def open(self) -> None:
        """Open the database (creating the schema) and sweep files no object names."""

        def connect() -> None:
            self._db_path.parent.mkdir(parents=True, exist_ok=True)
            (self._root / TMP_DIR).mkdir(parents=True, exist_ok=True)
            # Every shard directory exists (and is durable) before any object goes in one.
            for shard in range(256):
                (self._root / f"{shard:02x}").mkdir(exist_ok=True)
            _fsync_dir(self._root)
            db = sqlite3.connect(self._db_path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # FULL, not NORMAL: a delete's commit must be on disk before its file is unlinked,
            # or a power cut could bring back a row whose file is gone.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
            db.isolation_level = "DEFERRED"
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._db_pool, connect)
        removed = await self._run(self._sweep)
        if removed:
            log.info("removed %d object files that no object names", removed)

    def _sweep(self, db: sqlite3.Connection) -> int:
        """Delete temp files and files with no row (left by a crash between two steps)."""
        named = {str(row["file"]) for row in db.execute("SELECT file FROM objects")}
        removed = 0
        for entry in self._root.iterdir():
            if entry.name == TMP_DIR:
                for leftover in entry.iterdir():
                    _unlink(leftover)
                    removed += 1
            elif entry.is_dir() and SHARD.match(entry.name):
                for file in entry.iterdir():
                    if f"{entry.name}/{file.name}" not in named:
                        _unlink(file)
                        removed += 1
        return removed

    async def close(self) -> None:
        """Close the database and the store's threads."""

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._db_pool, shut)
        self._db_pool.shutdown(wait=True)
        self._io_pool.shutdown(wait=True)

    # buckets

    async def create_bucket(self, tenant: str, name: str) -> bool:
        """Create a bucket in the tenant's namespace; False when it already exists."""
        check_bucket_name(name)
        now = self._clock()

        def q(db: sqlite3.Connection) -> bool:
            with db:
                cur = db.execute(
                    "INSERT OR IGNORE INTO buckets (tenant, name, created) VALUES (?, ?, ?)",
                    (tenant, name, now),
                )
                return cur.rowcount == 1

        return await self._run(q)

    async def list_buckets(self, tenant: str) -> list[BucketInfo]:
        """The tenant's buckets, by name."""

        def q(db: sqlite3.Connection) -> list[BucketInfo]:
            with db:
                rows = db.execute(
                    "SELECT name, created FROM buckets WHERE tenant = ? ORDER BY name", (tenant,)
                ).fetchall()
            return [BucketInfo(name=r["name"], created=r["created"]) for r in rows]

        return await self._run(q)

    async def delete_bucket(self, tenant: str, name: str) -> bool:
        """Delete an empty bucket; False when there is none; BucketNotEmpty otherwise."""
        check_bucket_name(name)

        def q(db: sqlite3.Connection) -> bool:
            with db:
                if not _has_bucket(db, tenant, name):
                    return False
                if db.execute(
                    "SELECT 1 FROM objects WHERE tenant = ? AND bucket = ? LIMIT 1", (tenant, name)
                ).fetchone():
                    raise BucketNotEmpty(name)
                db.execute("DELETE FROM buckets WHERE tenant = ? AND name = ?", (tenant, name))
                return True

        return await self._run(q)

    # objects

    async def put_object(
        self, tenant: str, bucket: str, key: str, data: bytes, content_type: str | None
    ) -> ObjectInfo:
        """Store `data` under `key`, replacing any object there; emits `object.created`."""
        check_bucket_name(bucket)
        check_key(key)
        content_type = check_content_type(content_type)
        if len(data) > self.max_object_bytes:
            raise InvalidInput(f"the object is over the {self.max_object_bytes} byte limit", "body")
        # Fail before writing bytes when the bucket is plainly missing; the commit checks again.
        if not await self._run(lambda db: _has_bucket(db, tenant, bucket)):
            raise NoSuchBucket(bucket)
        file, sha = await self._io(lambda: self._write_file(data))
        draft = ObjectInfo(bucket, key, len(data), content_type, sha, created=0.0, updated=0.0)

        def q(db: sqlite3.Connection) -> ObjectInfo | None:
            try:
                committed, stale = self._commit_put(db, tenant, draft, file)
            except Exception:
                _unlink(self._root / file)  # rolled back: no row names it
                raise
            # Committed: only now may the replaced file go (or ours, if the bucket vanished).
            if stale is not None:
                _unlink(self._root / stale)
            return committed

        info = await self._run(q)
        if info is None:
            raise NoSuchBucket(bucket)
        await self._emit(tenant, object_event("object.created", info, info.updated))
        return info

    def _commit_put(
        self, db: sqlite3.Connection, tenant: str, draft: ObjectInfo, file: str
    ) -> tuple[ObjectInfo | None, str | None]:
        """Point the key at `file` in one transaction: (the stored info, the file to remove)."""
        # Timestamps taken on the database thread follow the order of the commits.
        now = self._clock()
        with db:
            if not _has_bucket(db, tenant, draft.bucket):
                return None, file
            old = db.execute(
                "SELECT file, created FROM objects WHERE tenant = ? AND bucket = ? AND key = ?",
                (tenant, draft.bucket, draft.key),
            ).fetchone()
            info = replace(draft, created=now if old is None else old["created"], updated=now)
            db.execute(
                f"INSERT OR REPLACE INTO objects (tenant, {OBJECT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    info.bucket,
                    info.key,
                    info.size,
                    info.content_type,
                    info.etag,
                    file,
                    info.created,
                    info.updated,
                ),
            )
        return info, None if old is None else str(old["file"])

    def _write_file(self, data: bytes) -> tuple[str, str]:
        """Write `data` durably under a fresh name; returns (path relative to root, sha256)."""
        name = uuid.uuid4().hex
        shard = self._root / name[:2]
        tmp = self._root / TMP_DIR / f"{name}.part"
        try:
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, shard / name)
        except BaseException:
            _unlink(tmp)
            raise
        _fsync_dir(shard)
        return f"{name[:2]}/{name}", hashlib.sha256(data).hexdigest()

    async def get_object(
        self, tenant: str, bucket: str, key: str
    ) -> tuple[ObjectInfo, Path] | None:
        """An object's metadata and file; None when there is no such key.

        The file may be replaced by a later put at any moment: to read the bytes, prefer
        `open_object`, which opens the file together with reading its row.
        """
        check_bucket_name(bucket)
        check_key(key)

        def q(db: sqlite3.Connection) -> tuple[ObjectInfo, Path] | None:
            row = self._object_row(db, tenant, bucket, key)
            return None if row is None else (_object_from_row(row), self._root / row["file"])

        return await self._run(q)

    async def open_object(
        self, tenant: str, bucket: str, key: str
    ) -> tuple[ObjectInfo, IO[bytes]] | None:
        """An object's metadata and its bytes opened for reading (the caller closes them)."""
        check_bucket_name(bucket)
        check_key(key)

        def q(db: sqlite3.Connection) -> tuple[ObjectInfo, IO[bytes]] | None:
            row = self._object_row(db, tenant, bucket, key)
            if row is None:
                return None
            # Opened on the thread that unlinks replaced files: no unlink can come in between.
            return _object_from_row(row), open(self._root / row["file"], "rb")

        return await self._run(q)

    def _object_row(
        self, db: sqlite3.Connection, tenant: str, bucket: str, key: str
    ) -> sqlite3.Row | None:
        with db:
            if not _has_bucket(db, tenant, bucket):
                raise NoSuchBucket(bucket)
            row: sqlite3.Row | None = db.execute(
                f"SELECT {OBJECT_COLUMNS} FROM objects WHERE tenant = ? AND bucket = ? AND key = ?",
                (tenant, bucket, key),
            ).fetchone()
        return row

    async def read_chunks(self, source: IO[bytes], size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """The bytes of an opened object, read off the event loop, `size` at a time."""
        while chunk := await self._io(lambda: source.read(size)):
            yield chunk

    async def close_file(self, source: IO[bytes]) -> None:
        """Close a file `open_object` returned."""
        await self._io(source.close)

    async def delete_object(self, tenant: str, bucket: str, key: str) -> bool:
        """Delete an object; False when there is no such key. Emits `object.deleted`."""
        check_bucket_name(bucket)
        check_key(key)

        def q(db: sqlite3.Connection) -> tuple[ObjectInfo, float] | None:
            now = self._clock()
            with db:
                if not _has_bucket(db, tenant, bucket):
                    raise NoSuchBucket(bucket)
                row = db.execute(
                    f"SELECT {OBJECT_COLUMNS} FROM objects "
                    "WHERE tenant = ? AND bucket = ? AND key = ?",
                    (tenant, bucket, key),
                ).fetchone()
                if row is None:
                    return None
                db.execute(
                    "DELETE FROM objects WHERE tenant = ? AND bucket = ? AND key = ?",
                    (tenant, bucket, key),
                )
            # Committed: the file is an orphan now, so removing it can never strand a row.
            _unlink(self._root / row["file"])
            return _object_from_row(row), now

        deleted = await self._run(q)
        if deleted is None:
            return False
        await self._emit(tenant, object_event("object.deleted", *deleted))
        return True

    async def list_objects(
        self,
        tenant: str,
        bucket: str,
        prefix: str = "",
        limit: int = MAX_LIST_LIMIT,
        start_after: str = "",
    ) -> ObjectPage:
        """Objects whose key starts with `prefix` and sorts after `start_after`, by key."""
        check_bucket_name(bucket)
        check_prefix(prefix)
        check_prefix(start_after, "start_after")
        check_limit(limit)
        upper = prefix_upper_bound(prefix)

        def q(db: sqlite3.Connection) -> list[ObjectInfo]:
            with db:
                if not _has_bucket(db, tenant, bucket):
                    raise NoSuchBucket(bucket)
                # One row past the page tells whether the listing is truncated.
                rows = db.execute(
                    f"SELECT {OBJECT_COLUMNS} FROM objects "
                    "WHERE tenant = ? AND bucket = ? AND key >= ? AND key > ? "
                    "AND (? IS NULL OR key < ?) ORDER BY key LIMIT ?",
                    (tenant, bucket, prefix, start_after, upper, upper, limit + 1),
                ).fetchall()
            return [_object_from_row(r) for r in rows]

        found = await self._run(q)
        page = tuple(found[:limit])
        return ObjectPage(
            objects=page, next_start_after=page[-1].key if len(found) > limit else None
        )

    async def _emit(self, tenant: str, event: dict[str, Any]) -> None:
        # The object is committed whatever a listener does: its failure is logged, not raised.
        if self._on_event is None:
            return
        try:
            await self._on_event(tenant, event)
        except Exception:
            log.exception("object event listener failed on %s", event["type"])


BUCKETS = web.AppKey("buckets", BucketStore)


def setup_buckets(
    app: web.Application,
    data_dir: Path,
    on_event: EventSink | None = None,
    max_object_bytes: int = MAX_OBJECT_BYTES,
) -> None:
    """Serve the bucket routes from a BucketStore under `data_dir`, opened with the app."""
    # Imported here: the routes module imports BUCKETS from this one.
    from gateway.routes import buckets as bucket_routes

    store = BucketStore(data_dir, on_event=on_event, max_object_bytes=max_object_bytes)
    app[BUCKETS] = store

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app.cleanup_ctx.append(lifetime)
    app.add_routes(bucket_routes.routes)
