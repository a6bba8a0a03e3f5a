"""Functions with an image of their own in the store: the image and its protocol kept with
each version, on SQLite and PostgreSQL, and a store made before them brought up to date."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from invoker.store.base import FunctionDraft, Store
from invoker.store.sql.schema import tables
from invoker.store.sqlite import SqliteStore
from invoker.store.sqlite import schema as sqlite_schema
from tests.unit import store_suite
from tests.unit.store_suite import T0, draft

backend = store_suite.backend
store = store_suite.store


def image_draft(image: str, protocol: str) -> FunctionDraft:
    handler = "main.handler" if protocol == "nimbus" else ""
    return draft(
        runtime="image",
        handler=handler,
        code_kind="image",
        code=b"",
        image=image,
        image_protocol=protocol,
    )


async def test_an_image_function_keeps_its_image_with_every_version(store: Store) -> None:
    first, _ = await store.put_function(image_draft("team/fn:1", "http"), T0)
    assert (first.spec.image, first.spec.image_protocol) == ("team/fn:1", "http")
    assert first.to_json()["image"] == "team/fn:1" and first.code_size == 0
    await store.put_function(image_draft("team/fn:2", "nimbus"), T0 + 1)
    latest = await store.get_function("acme", "resize")
    assert latest is not None and latest.spec.image == "team/fn:2"
    old = await store.get_version("acme", "resize", 1)
    assert old is not None and (old.spec.image, old.spec.image_protocol) == ("team/fn:1", "http")
    code, _ = await store.put_function(draft(), T0 + 2)  # code again: no image
    assert code.spec.image is None and code.to_json()["image_protocol"] is None


async def test_a_store_made_before_images_gains_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(tables(sqlite_schema.TYPES))  # the tables as first made: no image
    db.commit()
    db.close()
    old = SqliteStore(path)
    await old.open()
    try:
        stored, _ = await old.put_function(image_draft("team/fn:1", "http"), T0)
        found = await old.get_version("acme", "resize", stored.spec.version)
        assert found is not None and found.spec.image == "team/fn:1"
    finally:
        await old.close()
