"""The store's tenant lifecycle, API keys and activation history, on SQLite and PostgreSQL.

Uses the `store` fixture of tests/unit/test_store.py: each test runs once per backend.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from invoker.store.base import (
    MAX_KEYS_PER_TENANT,
    RECORD_OVERHEAD_BYTES,
    LastKeyError,
    Removal,
    Store,
    TooManyKeysError,
    dumped_size,
    fit_page,
    page_end,
)
from invoker.store.sqlite import SqliteStore
from tests.unit import store_suite as suite
from tests.unit.store_suite import (
    T0,
    THUMB,
    Backend,
    draft,
    finished,
    pending,
    rule,
    trigger,
    usage_of,
)

# The store suite's fixtures: every test here runs on SQLite and on PostgreSQL.
store = suite.store
backend = suite.backend

BIG = "x" * 200_000


# --- pure -------------------------------------------------------------------------------


def test_a_page_stops_at_the_byte_budget_but_always_holds_one_record() -> None:
    cost = 100 + RECORD_OVERHEAD_BYTES
    assert fit_page([100, 100, 100], limit=10, max_bytes=2 * cost) == (2, True)
    assert fit_page([100, 100, 100], limit=10, max_bytes=3 * cost) == (3, False)
    assert fit_page([100, 100, 100, 100], limit=3, max_bytes=10**9) == (3, False)
    assert fit_page([10**9, 100], limit=10, max_bytes=1000) == (1, True)  # alone, but listed
    assert fit_page([], limit=10, max_bytes=1000) == (0, False)


def test_a_page_names_its_end_only_when_records_are_left() -> None:
    assert page_end([9, 7, 4], 2) == 7
    assert page_end([9, 7, 4], 3) is None
    assert page_end([], 0) is None


# --- tenants and keys -------------------------------------------------------------------


async def test_a_second_key_works_and_a_revoked_one_does_not(store: Store) -> None:
    assert await store.create_tenant("acme", "hash-first")
    first = await store.list_keys("acme")
    assert len(first) == 1
    second = await store.add_key("acme", "hash-second", time.time() + 1)
    assert second is not None and second.key_id != first[0].key_id
    assert await store.tenant_for_key("hash-second") == "acme"
    assert [k.key_id for k in await store.list_keys("acme")] == [first[0].key_id, second.key_id]

    assert await store.revoke_key("acme", first[0].key_id) == "hash-first"
    assert await store.tenant_for_key("hash-first") is None
    assert await store.tenant_for_key("hash-second") == "acme"
    with pytest.raises(LastKeyError):
        await store.revoke_key("acme", second.key_id)
    assert await store.tenant_for_key("hash-second") == "acme"
    assert await store.revoke_key("acme", "k-unknown") is None


async def test_keys_are_per_tenant_and_bounded(store: Store) -> None:
    await store.create_tenant("acme", "hash-acme")
    await store.create_tenant("globex", "hash-globex")
    globex_key = (await store.list_keys("globex"))[0].key_id
    assert await store.revoke_key("acme", globex_key) is None  # not acme's to revoke
    assert await store.add_key("nobody", "hash-nobody", T0) is None
    for n in range(MAX_KEYS_PER_TENANT - 1):
        assert await store.add_key("acme", f"hash-acme-{n}", T0) is not None
    with pytest.raises(TooManyKeysError):
        await store.add_key("acme", "hash-one-too-many", T0)
    assert await store.tenant_for_key("hash-one-too-many") is None


async def test_tenants_are_listed_with_their_created_time(store: Store) -> None:
    await store.create_tenant("globex", "hash-globex")
    await store.create_tenant("acme", "hash-acme")
    listed = await store.list_tenants()
    assert [t.name for t in listed] == ["acme", "globex"]
    assert all(t.created > T0 for t in listed)
    assert await store.tenant_exists("acme") and not await store.tenant_exists("initech")


async def test_the_store_secret_is_made_once_and_shared(store: Store, backend: Backend) -> None:
    first = await store.secret("cursor")
    assert len(first) == 32
    assert await store.secret("cursor") == first
    assert await (await backend.peer(store)).secret("cursor") == first
    assert await store.secret("other") != first


async def _populate(store: Store, tenant: str, code: bytes) -> None:
    """A tenant with a function, history, a queued call, a trigger, a rule and limits."""
    await store.create_tenant(tenant, f"hash-{tenant}")
    await store.put_function(draft("resize", tenant=tenant, code=code), T0)
    done = finished(f"{tenant}-done", tenant=tenant)
    await store.save_activation(done, usage_of(done))
    await store.enqueue(pending(f"{tenant}-queued", tenant=tenant), {"n": 1}, T0)
    await store.put_trigger(trigger("nightly", tenant=tenant))
    await store.put_rule(rule("nightly-resize", "nightly", tenant=tenant))
    await store.save_keepalive("budget", [(tenant, "resize", {"n": 1})], T0)


async def test_deleting_a_tenant_removes_all_it_owns_but_keeps_the_books(store: Store) -> None:
    shared = b"def handler(e):\n    return 'shared'\n"
    await _populate(store, "acme", THUMB)
    await _populate(store, "globex", shared)
    await store.put_function(draft("also", tenant="acme", code=shared), T0)
    thumb_sha = hashlib.sha256(THUMB).hexdigest()

    assert await store.delete_tenant("initech", T0) is None
    deleted = await store.delete_tenant("acme", T0 + 10)
    assert deleted is not None
    assert deleted.key_hashes == ("hash-acme",)
    assert sorted(deleted.functions) == ["also", "resize"]

    assert await store.tenant_for_key("hash-acme") is None
    assert not await store.tenant_exists("acme")
    assert await store.list_functions("acme") == []
    assert await store.get_code(thumb_sha) is None  # its own code went
    assert await store.get_code(hashlib.sha256(shared).hexdigest()) == shared  # shared stays
    assert await store.get_activation("acme", "acme-done") is None
    assert await store.get_activation("acme", "acme-queued") is None
    assert [c.tenant for c in await store.claim(T0 + 60, 10)] == ["globex"]
    assert await store.list_triggers("acme") == [] and await store.list_rules("acme") == []
    assert [t for t, _, _ in await store.load_keepalive("budget")] == ["globex"]
    # The provider's books keep the call; the tenant's own bill no longer shows it.
    assert await store.list_usage("acme", 0, T0 + 3600) == []
    books = await store.list_usage(None, 0, T0 + 3600)
    assert sorted(r.tenant for r in books) == ["acme", "globex"]

    # The other tenant is untouched.
    assert await store.tenant_for_key("hash-globex") == "globex"
    assert [f.spec.name for f in await store.list_functions("globex")] == ["resize"]
    assert await store.get_activation("globex", "globex-done") is not None
    assert len(await store.list_triggers("globex")) == 1


async def test_a_tenant_created_again_sees_nothing_of_the_old_one(store: Store) -> None:
    await _populate(store, "acme", THUMB)
    await store.delete_tenant("acme", T0 + 10)
    # A call that was running when its tenant went records its outcome afterwards.
    late = finished("acme-late", tenant="acme")
    await store.save_activation(late, usage_of(late))

    assert await store.create_tenant("acme", "hash-acme-2")
    assert await store.tenant_for_key("hash-acme") is None
    assert await store.tenant_for_key("hash-acme-2") == "acme"
    page = await store.list_activations_page("acme", None, 50, None, 2**20)
    assert page.activations == []
    assert await store.list_usage("acme", 0, T0 + 3600) == []
    assert await store.list_functions("acme") == []
    assert len(await store.list_keys("acme")) == 1


async def test_a_store_made_before_key_rotation_keeps_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE tenants (name TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, "
        "created REAL NOT NULL)"
    )
    db.execute("INSERT INTO tenants VALUES ('acme', 'hash-acme', 1.0)")
    db.commit()
    db.close()
    old = SqliteStore(path)
    await old.open()
    try:
        assert await old.tenant_for_key("hash-acme") == "acme"
        assert len(await old.list_keys("acme")) == 1
        assert await old.add_key("acme", "hash-new", T0) is not None
    finally:
        await old.close()
    again = SqliteStore(path)
    await again.open()
    try:
        assert len(await again.list_keys("acme")) == 2  # the backfill ran once
    finally:
        await again.close()


# --- activation pages -------------------------------------------------------------------


async def _history(store: Store, count: int) -> list[str]:
    """`count` activations of acme with results of growing size; their ids, newest first."""
    ids = []
    for n in range(count):
        aid = f"act-{n:03d}"
        result = {"blob": "y" * (n * 40_000)}
        await store.save_activation(finished(aid, start=T0 + n, result=result))
        ids.append(aid)
    return ids[::-1]


async def test_paging_by_bytes_reaches_every_record_once(store: Store) -> None:
    ids = await _history(store, 12)
    budget = 300_000
    seen: list[str] = []
    cursor: int | None = None
    pages = 0
    while True:
        page = await store.list_activations_page("acme", None, 5, cursor, budget)
        pages += 1
        size = sum(dumped_size(a) + RECORD_OVERHEAD_BYTES for a in page.activations)
        assert size <= budget or len(page.activations) == 1
        seen += [a.id for a in page.activations]
        if page.next_seq is None:
            assert not page.truncated
            break
        cursor = page.next_seq
    assert seen == ids
    assert pages > 12 // 5 + 1  # the byte budget, not the count, made pages


async def test_a_page_says_when_the_budget_ended_it(store: Store) -> None:
    await _history(store, 4)
    whole = await store.list_activations_page("acme", None, 10, None, 2**30)
    assert len(whole.activations) == 4 and not whole.truncated and whole.next_seq is None
    by_count = await store.list_activations_page("acme", None, 2, None, 2**30)
    assert len(by_count.activations) == 2 and not by_count.truncated
    assert by_count.next_seq is not None
    by_bytes = await store.list_activations_page("acme", None, 10, None, 130_000)
    assert len(by_bytes.activations) == 1 and by_bytes.truncated  # 120 kB, then 80 kB
    assert by_bytes.next_seq is not None


async def test_pages_filter_by_function_and_tenant(store: Store) -> None:
    await store.save_activation(finished("a1", function="resize"))
    await store.save_activation(finished("a2", function="thumb"))
    await store.save_activation(finished("b1", tenant="globex"))
    page = await store.list_activations_page("acme", "thumb", 10, None, 2**20)
    assert [a.id for a in page.activations] == ["a2"]
    page = await store.list_activations_page("acme", None, 10, None, 2**20)
    assert [a.id for a in page.activations] == ["a2", "a1"]


# --- deleting activations ---------------------------------------------------------------


async def test_one_activation_is_deleted_within_its_tenant_only(store: Store) -> None:
    done = finished("a1", result={"big": BIG})
    await store.save_activation(done, usage_of(done))
    await store.enqueue(pending("q1"), {}, T0)
    assert await store.delete_activation("globex", "a1") == Removal.MISSING
    assert await store.delete_activation("acme", "q1") == Removal.QUEUED
    assert await store.delete_activation("acme", "a1") == Removal.DELETED
    assert await store.delete_activation("acme", "a1") == Removal.MISSING
    assert await store.get_activation("acme", "a1") is None
    assert await store.get_activation("acme", "q1") is not None
    # The bill stays exact: the usage record outlives the activation.
    assert [r.activation_id for r in await store.list_usage("acme", 0, T0 + 60)] == ["a1"]


async def test_bulk_delete_by_time_and_function_keeps_queued_calls(store: Store) -> None:
    for n in range(3):
        await store.save_activation(finished(f"old-{n}", start=T0 + n))
    await store.save_activation(finished("old-thumb", function="thumb", start=T0))
    await store.save_activation(finished("new", start=T0 + 1000))
    await store.save_activation(finished("other", tenant="globex", start=T0))
    await store.enqueue(pending("queued"), {}, T0)

    assert await store.delete_activations("acme", "thumb", T0 + 500) == 1
    assert await store.delete_activations("acme", None, T0 + 500) == 3
    left = await store.list_activations_page("acme", None, 50, None, 2**20)
    assert sorted(a.id for a in left.activations) == ["new", "queued"]
    assert await store.get_activation("globex", "other") is not None


async def test_bulk_delete_goes_in_batches(store: Store) -> None:
    many = [finished(f"a{n:04d}", start=T0) for n in range(1203)]
    for activation in many:
        await store.save_activation(activation, wait=False)
    assert await store.delete_activations(None, None, T0 + 1) == 1203
    assert (await store.list_activations_page("acme", None, 10, None, 2**20)).activations == []


async def test_sizes_are_stored_with_each_write(store: Store) -> None:
    small = finished("a1", result={"n": 1})
    await store.save_activation(small)
    await store.save_activation(replace(small, result={"big": BIG}, logs=["é" * 10]))
    tight = await store.list_activations_page("acme", None, 10, None, 150_000)
    assert [a.id for a in tight.activations] == ["a1"]
    await store.save_activation(finished("a2"))
    both = await store.list_activations_page("acme", None, 10, None, 150_000)
    assert [a.id for a in both.activations] == ["a2"] and both.truncated


async def test_a_store_made_before_sizes_learns_them_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = SqliteStore(path)
    await first.open()
    await first.save_activation(finished("big", result={"big": BIG}))
    await first.save_activation(finished("small"))
    await first.close()
    db = sqlite3.connect(path)  # as a store made before the size column
    db.executescript(
        "DROP INDEX activations_page; DROP INDEX activations_page_by_function; "
        "ALTER TABLE activations DROP COLUMN size;"
    )
    db.close()
    again = SqliteStore(path)
    await again.open()
    try:
        page = await again.list_activations_page("acme", None, 10, None, 100_000)
        assert [a.id for a in page.activations] == ["small"] and page.truncated
        assert page.size < 1000
    finally:
        await again.close()
