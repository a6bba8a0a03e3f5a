"""One-time import of the object store that gateways before the objects room kept in
their data dir: metadata in `<data_dir>/objects.db` (SQLite), bytes in
`<data_dir>/objects/<2 hex>/<32 hex>`.

On open, when `objects.db` is there, every bucket and object in it goes into the current
store (bytes stored and pinned first, as a put does), keeping names, content types and
times. Then `objects.db` is renamed `objects.db.migrated` (the commit point: a crash
before it repeats the import, which skips what is already there) and the old `objects/`
directory is removed. A key the current store already holds keeps the current object.
A file whose bytes no longer match its recorded SHA-256 is imported with the bytes as they
are (the ETag is the hash of what is served); a file that is missing or unreadable (a
symlink is never followed) is skipped; all are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from invoker.objects.local_blobs import DIR_FLAGS, open_file, open_path
from invoker.objects.model import BlobRef, Blobs, BucketInfo, ObjectInfo, ObjectMeta

log = logging.getLogger("nimbus.objects")

LEGACY_DB = "objects.db"
LEGACY_DIR = "objects"
MIGRATED = "objects.db.migrated"
LEGACY_FILE = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{32})$")


@dataclass(frozen=True)
class LegacyObject:
    """One row of the old `objects` table."""

    tenant: str
    info: ObjectInfo
    file: str


def read_legacy(path: Path) -> tuple[list[tuple[str, BucketInfo]], list[LegacyObject]]:
    """The old store's buckets and objects (a normal connection: a WAL left by a crash is
    replayed, and folded back into the file when it closes)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        buckets = [
            (r["tenant"], BucketInfo(r["name"], r["created"]))
            for r in db.execute("SELECT tenant, name, created FROM buckets")
        ]
        objects = [
            LegacyObject(
                r["tenant"],
                ObjectInfo(
                    r["bucket"],
                    r["key"],
                    r["size"],
                    r["content_type"],
                    r["sha256"],
                    r["created"],
                    r["updated"],
                ),
                r["file"],
            )
            for r in db.execute(
                "SELECT tenant, bucket, key, size, content_type, sha256, file, created, updated "
                "FROM objects"
            )
        ]
    return buckets, objects


def read_legacy_file(root: Path, file: str) -> bytes | None:
    """An old object file's bytes, never through a symlink; None when it is missing."""
    named = LEGACY_FILE.fullmatch(file)
    if named is None:
        return None
    root_fd = os.open(root, DIR_FLAGS)
    try:
        shard = open_path(root_fd, [named.group(1)])
    finally:
        os.close(root_fd)
    if shard is None:
        return None
    try:
        opened = open_file(shard, named.group(2))
    finally:
        os.close(shard)
    if opened is None:
        return None
    with opened:
        return opened.read()


async def import_legacy(data_dir: Path, meta: ObjectMeta, blobs: Blobs) -> int:
    """Import the old store in `data_dir` if there is one; how many objects came in."""
    db_path = data_dir / LEGACY_DB
    if not await asyncio.to_thread(_pending, data_dir):
        return 0
    buckets, objects = await asyncio.to_thread(read_legacy, db_path)
    for tenant, bucket in buckets:
        await meta.import_bucket(tenant, bucket)
    imported = 0
    for old in objects:
        imported += await _import_object(data_dir / LEGACY_DIR, old, meta, blobs)
    await asyncio.to_thread(_retire, data_dir)
    log.info(
        "imported %d of %d objects in %d buckets from %s",
        imported,
        len(objects),
        len(buckets),
        db_path,
    )
    return imported


async def _import_object(root: Path, old: LegacyObject, meta: ObjectMeta, blobs: Blobs) -> bool:
    where = f"{old.tenant}/{old.info.bucket}/{old.info.key}"
    try:
        data = await asyncio.to_thread(read_legacy_file, root, old.file)
    except OSError as exc:  # a symlink (never followed), permissions, ...
        log.warning("object %s: its file %s is unreadable (%s); not imported", where, old.file, exc)
        return False
    if data is None:
        log.warning("object %s: its file %s is missing; not imported", where, old.file)
        return False
    sha = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    if sha != old.info.etag:
        log.warning("object %s: its bytes changed since they were stored; imported as is", where)
    ref = BlobRef(old.tenant, sha)
    info = ObjectInfo(
        old.info.bucket,
        old.info.key,
        len(data),
        old.info.content_type,
        sha,
        old.info.created,
        old.info.updated,
    )
    async with meta.pinned(ref):
        await blobs.put(ref, data)
        # False: the key is taken; the bytes just stored are swept with the other orphans.
        return await meta.import_object(old.tenant, info)


def _pending(data_dir: Path) -> bool:
    """Whether an old store waits to be imported (else its leftover files are removed)."""
    if (data_dir / LEGACY_DB).is_file():
        return True
    _remove_old_files(data_dir)
    return False


def _retire(data_dir: Path) -> None:
    """The commit point: the old database is renamed, then its files go."""
    os.replace(data_dir / LEGACY_DB, data_dir / MIGRATED)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(data_dir / (LEGACY_DB + suffix))
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _remove_old_files(data_dir)


def _remove_old_files(data_dir: Path) -> None:
    """The old bytes, once their database is retired (also after a crash right then)."""
    old = data_dir / LEGACY_DIR
    if (data_dir / MIGRATED).is_file() and old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)  # removes links below it; never follows them
