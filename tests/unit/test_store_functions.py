"""The store's functions and their code, and the keep-alive histories that go with them.

Uses store_suite's `store` and `backend` fixtures: each test runs on SQLite and on
PostgreSQL (at NIMBUS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import asyncio
import hashlib

from invoker.store.base import Store
from tests.unit import store_suite
from tests.unit.store_suite import RESIZE, T0, THUMB, Backend, draft

backend = store_suite.backend
store = store_suite.store


# functions and code


async def test_deploying_a_function_stores_its_spec_and_its_code(store: Store) -> None:
    stored, created = await store.put_function(draft(memory_mb=512, network=True), T0)
    assert created is True
    spec = stored.spec
    assert (spec.tenant, spec.name, spec.version) == ("acme", "resize", 1)
    assert (spec.runtime, spec.handler, spec.code_kind) == ("python:3.11", "main.handler", "source")
    assert (spec.memory_mb, spec.timeout_s, spec.concurrency, spec.network) == (512, 30.0, 1, True)
    assert dict(spec.env) == {"BUCKET": "photos", "GREETING": "grüß dich"}
    assert spec.code_sha256 == hashlib.sha256(RESIZE).hexdigest()
    assert (stored.created, stored.updated, stored.code_size) == (T0, T0, len(RESIZE))
    assert await store.get_function("acme", "resize") == stored
    assert await store.get_code(spec.code_sha256) == RESIZE
    assert await store.get_code(hashlib.sha256(b"never deployed").hexdigest()) is None


async def test_an_update_bumps_the_version_and_keeps_the_created_time(store: Store) -> None:
    await store.put_function(draft(), T0)
    second, created = await store.put_function(draft(code=THUMB, memory_mb=1024), T0 + 60)
    assert created is False
    assert second.spec.version == 2
    assert (second.created, second.updated) == (T0, T0 + 60)
    assert second.spec.memory_mb == 1024
    assert second.spec.code_sha256 == hashlib.sha256(THUMB).hexdigest()
    third, _ = await store.put_function(draft(code=THUMB, env={}), T0 + 120)
    assert third.spec.version == 3 and dict(third.spec.env) == {}
    assert await store.get_function("acme", "resize") == third


async def test_concurrent_deploys_each_get_their_own_version(
    store: Store, backend: Backend
) -> None:
    peer = await backend.peer(store)
    await store.put_function(draft(), T0)
    results = await asyncio.gather(
        *(
            (store if i % 2 else peer).put_function(draft(timeout_s=float(i + 1)), T0 + i)
            for i in range(10)
        )
    )
    assert sorted(r[0].spec.version for r in results) == list(range(2, 12))
    assert not any(created for _, created in results)
    current = await store.get_function("acme", "resize")
    assert current is not None and current.spec.version == 11


async def test_functions_are_listed_by_name_within_their_tenant(store: Store) -> None:
    for name in ("thumbnail", "resize", "audit"):
        await store.put_function(draft(name), T0)
    globex, _ = await store.put_function(draft("resize", tenant="globex", code=THUMB), T0)
    assert [f.spec.name for f in await store.list_functions("acme")] == [
        "audit",
        "resize",
        "thumbnail",
    ]
    assert await store.list_functions("globex") == [globex]
    assert await store.list_functions("initech") == []
    assert await store.get_function("globex", "audit") is None
    # Same name, two tenants: two functions with their own versions and code.
    await store.put_function(draft("resize"), T0 + 1)
    acme = await store.get_function("acme", "resize")
    assert acme is not None and acme.spec.version == 2
    assert await store.get_function("globex", "resize") == globex


async def test_deleting_a_function(store: Store) -> None:
    await store.put_function(draft(), T0)
    await store.put_function(draft(), T0 + 1)
    await store.put_function(draft("resize", tenant="globex"), T0)
    assert await store.delete_function("acme", "resize") is True
    assert await store.delete_function("acme", "resize") is False
    assert await store.get_function("acme", "resize") is None
    assert await store.get_function("globex", "resize") is not None
    # Deploying the name again starts a new function.
    again, created = await store.put_function(draft(), T0 + 2)
    assert created is True
    assert (again.spec.version, again.created) == (1, T0 + 2)


async def test_code_is_stored_once_by_content_and_collected_when_unused(store: Store) -> None:
    shared = hashlib.sha256(RESIZE).hexdigest()
    replaced = hashlib.sha256(THUMB).hexdigest()
    await store.put_function(draft("resize"), T0)
    await store.put_function(draft("resize", tenant="globex"), T0)
    await store.put_function(draft("thumbnail", code=THUMB), T0)
    await store.put_function(draft("thumbnail", code=RESIZE), T0 + 1)  # THUMB now unused

    assert await store.delete_function("globex", "resize") is True
    assert await store.get_code(shared) == RESIZE  # two functions still use it
    assert await store.get_code(replaced) == THUMB  # thumbnail's version 1 still uses it
    await store.delete_function("acme", "resize")
    assert await store.get_code(shared) == RESIZE
    await store.delete_function("acme", "thumbnail")
    assert await store.get_code(shared) is None


async def test_a_deploy_racing_a_delete_keeps_its_code(store: Store, backend: Backend) -> None:
    peer = await backend.peer(store)
    for i in range(12):
        code = RESIZE + f"# build {i}\n".encode()
        await store.put_function(draft("old", code=code), T0 + i)
        # "new" takes the same code while deleting "old" would leave that code unused.
        (deployed, _), _ = await asyncio.gather(
            store.put_function(draft("new", code=code), T0 + i),
            peer.delete_function("acme", "old"),
        )
        assert await store.get_code(deployed.spec.code_sha256) == code


async def test_keep_alive_histories_are_kept_replaced_and_go_with_their_function(
    store: Store, backend: Backend
) -> None:
    await store.put_function(draft(), T0)
    first = {"bins": {"0": 3}, "calls": 4}
    await store.save_keepalive("budget", [("acme", "resize", first)], T0)
    await store.save_keepalive("budget", [("acme", "other", {"calls": 1})], T0)
    await store.save_keepalive("hybrid", [("acme", "resize", {"calls": 9})], T0)
    newer = {"bins": {"0": 5}, "calls": 7}
    await store.save_keepalive("budget", [("acme", "resize", newer)], T0 + 60)
    await store.save_keepalive("budget", [], T0 + 61)  # nothing changed: nothing written
    await backend.stop(store)  # what was learned outlives the gateway

    restarted = await backend.connect()
    assert sorted(await restarted.load_keepalive("budget")) == [
        ("acme", "other", {"calls": 1}),
        ("acme", "resize", newer),
    ]
    assert await restarted.delete_function("acme", "resize")
    assert await restarted.load_keepalive("budget") == [("acme", "other", {"calls": 1})]
    assert await restarted.load_keepalive("hybrid") == []  # every policy's rows of it
