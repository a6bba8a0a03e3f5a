"""An old data dir's object store (`objects.db` + `objects/`) is imported once on open, into
every backend, and over HTTP a gateway started on such a data dir serves its objects."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.unit import objects_backends as backends
from tests.unit.buckets_platform import Bucketed
from tests.unit.objects_backends import Backend, opened, read_all

objects_backend = backends.objects_backend  # the fixture: one run per backend

# The schema gateways wrote before the objects room (gateway/buckets.py).
LEGACY_SCHEMA = """
CREATE TABLE buckets (tenant TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (tenant, name));
CREATE TABLE objects (tenant TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
    size INTEGER NOT NULL, content_type TEXT NOT NULL, sha256 TEXT NOT NULL,
    file TEXT NOT NULL UNIQUE, created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (tenant, bucket, key),
    FOREIGN KEY (tenant, bucket) REFERENCES buckets (tenant, name));
"""


@dataclass
class Legacy:
    """An old store being written by hand into a data dir."""

    data_dir: Path

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "objects" / "tmp").mkdir(parents=True)
        with self._db() as db:
            db.executescript(LEGACY_SCHEMA)

    def _db(self) -> contextlib.closing[sqlite3.Connection]:
        db = sqlite3.connect(self.data_dir / "objects.db", isolation_level=None)
        return contextlib.closing(db)

    def bucket(self, tenant: str, name: str, created: float) -> None:
        with self._db() as db:
            db.execute("INSERT INTO buckets VALUES (?, ?, ?)", (tenant, name, created))

    def object(
        self, tenant: str, bucket: str, key: str, data: bytes, ctype: str, when: float
    ) -> Path:
        """Write an object's file and row as the old store did; returns the file."""
        name = uuid.uuid4().hex
        file = self.data_dir / "objects" / name[:2] / name
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(data)
        with self._db() as db:
            db.execute(
                "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    bucket,
                    key,
                    len(data),
                    ctype,
                    hashlib.sha256(data).hexdigest(),
                    f"{name[:2]}/{name}",
                    when,
                    when + 1,
                ),
            )
        return file


def legacy_with_objects(data_dir: Path, outside: Path) -> Legacy:
    """Two tenants' objects, plus a file gone missing, one changed and one turned link."""
    old = Legacy(data_dir)
    old.bucket("ann", "photos", 100.0)
    old.bucket("ann", "empty", 101.0)
    old.bucket("bob", "photos", 102.0)
    old.object("ann", "photos", "2024/cat.jpg", b"\xff\xd8 cat", "image/jpeg", 200.0)
    old.object("ann", "photos", "same.txt", b"same", "text/plain; charset=utf-8", 201.0)
    old.object("bob", "photos", "same.txt", b"same", "text/plain", 202.0)
    old.object("ann", "photos", "gone", b"x", "text/plain", 203.0).unlink()
    old.object("ann", "photos", "changed", b"before", "text/plain", 204.0).write_bytes(b"after")
    outside.write_bytes(b"a secret outside the data dir")
    linked = old.object("ann", "photos", "link", b"y", "text/plain", 205.0)
    linked.unlink()
    linked.symlink_to(outside)
    return old


async def test_an_old_store_is_imported_once(objects_backend: Backend, tmp_path: Path) -> None:
    data_dir = objects_backend.data_dir
    legacy_with_objects(data_dir, tmp_path / "secret")
    async with opened(objects_backend.make()) as store:
        assert [(b.name, b.created) for b in await store.list_buckets("ann")] == [
            ("empty", 101.0),
            ("photos", 100.0),
        ]
        page = await store.list_objects("ann", "photos")
        infos = {o.key: o for o in page.objects}
        assert sorted(infos) == ["2024/cat.jpg", "changed", "same.txt"]  # not: gone, link
        cat = infos["2024/cat.jpg"]
        assert (cat.content_type, cat.created, cat.updated, cat.size) == (
            "image/jpeg",
            200.0,
            201.0,
            6,
        )
        assert cat.etag == hashlib.sha256(b"\xff\xd8 cat").hexdigest()
        assert await read_all(store, "ann", "photos", "2024/cat.jpg") == b"\xff\xd8 cat"
        # Served as it is on disk: the ETag is the hash of what is served.
        assert infos["changed"].etag == hashlib.sha256(b"after").hexdigest()
        assert await read_all(store, "ann", "photos", "changed") == b"after"
        assert infos["same.txt"].content_type == "text/plain; charset=utf-8"
        assert await read_all(store, "bob", "photos", "same.txt") == b"same"
        # Once: the old store is retired, and a change made since is not undone.
        assert await store.delete_object("ann", "photos", "changed")
    assert not (data_dir / "objects.db").exists() and (data_dir / "objects.db.migrated").exists()
    assert not (data_dir / "objects").exists()
    assert (tmp_path / "secret").read_bytes() == b"a secret outside the data dir"
    async with opened(objects_backend.make()) as store:
        keys = [o.key for o in (await store.list_objects("ann", "photos")).objects]
        assert keys == ["2024/cat.jpg", "same.txt"]
    stored = await objects_backend.stored()
    assert {t for t, _ in stored} == {"ann", "bob"} and len(stored) == 3


async def test_an_import_cut_short_is_finished_and_keeps_newer_objects(
    objects_backend: Backend,
) -> None:
    data_dir = objects_backend.data_dir
    old = Legacy(data_dir)
    old.bucket("ann", "box", 1.0)
    old.object("ann", "box", "a", b"old a", "text/plain", 2.0)
    old.object("ann", "box", "b", b"old b", "text/plain", 3.0)
    # A store that already holds "a" (an earlier, interrupted import; or another replica's).
    async with opened(objects_backend.make(legacy_dir=None)) as store:
        await store.create_bucket("ann", "box")
        await store.put_object("ann", "box", "a", b"newer a", "text/plain")
    async with opened(objects_backend.make()) as store:
        assert await read_all(store, "ann", "box", "a") == b"newer a"
        assert await read_all(store, "ann", "box", "b") == b"old b"
    assert {s for _, s in await objects_backend.stored()} == {
        hashlib.sha256(d).hexdigest() for d in (b"newer a", b"old b")
    }


async def test_a_gateway_on_an_old_data_dir_serves_its_objects(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old = Legacy(data_dir)
    old.bucket("admin", "photos", 100.0)
    cat = b"\x89PNG cat"
    old.object("admin", "photos", "in/cat.png", cat, "image/png", 200.0)
    nimbus = Bucketed(data_dir, 1 << 20)
    await nimbus.start()
    try:
        status, got, headers = await nimbus.raw("GET", "/v1/buckets/photos/objects/in/cat.png")
        assert (status, got, headers["Content-Type"]) == (200, cat, "image/png")
        assert headers["ETag"] == f'"{hashlib.sha256(cat).hexdigest()}"'
        status, body, _ = await nimbus.raw("GET", "/v1/buckets")
        assert json.loads(body) == {"buckets": [{"name": "photos", "created": 100.0}]}
    finally:
        await nimbus.stop()
    assert sorted(os.listdir(data_dir)).count("objects.db.migrated") == 1
