"""The store's function versions and aliases, on SQLite and PostgreSQL (store_suite)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from invoker.store.base import MissingVersions, Store
from tests.unit import store_suite
from tests.unit.store_suite import RESIZE, T0, THUMB, Backend, draft

backend = store_suite.backend
store = store_suite.store


async def test_every_deploy_keeps_an_immutable_version(store: Store) -> None:
    first, _ = await store.put_function(draft(memory_mb=256), T0)
    second, _ = await store.put_function(draft(code=THUMB, memory_mb=512, env={}), T0 + 60)
    v1 = await store.get_version("acme", "resize", 1)
    v2 = await store.get_version("acme", "resize", 2)
    assert v1 is not None and v2 is not None
    assert v1.spec == first.spec and v1.created == T0 and v1.code_size == len(RESIZE)
    assert v2.spec == second.spec and v2.created == T0 + 60
    assert await store.get_code(v1.spec.code_sha256) == RESIZE  # the old code stays
    assert [v.spec.version for v in await store.list_versions("acme", "resize")] == [2, 1]
    assert await store.get_version("acme", "resize", 3) is None
    assert await store.get_version("other", "resize", 1) is None


async def test_aliases_point_at_existing_versions_and_move(store: Store) -> None:
    await store.put_function(draft(), T0)
    await store.put_function(draft(code=THUMB), T0 + 1)
    made = await store.put_alias("acme", "resize", "prod", ((1, 1.0),), T0 + 2)
    assert made is not None
    alias, created = made
    assert created and alias.split == ((1, 1.0),) and alias.created == T0 + 2
    with pytest.raises(MissingVersions) as missing:
        await store.put_alias("acme", "resize", "prod", ((2, 0.5), (7, 0.5)), T0 + 3)
    assert missing.value.versions == (7,)
    assert (await store.get_alias("acme", "resize", "prod")) == alias  # unchanged
    moved = await store.put_alias("acme", "resize", "prod", ((1, 0.9), (2, 0.1)), T0 + 4)
    assert moved is not None and moved[1] is False
    assert moved[0].split == ((1, 0.9), (2, 0.1))
    assert (moved[0].created, moved[0].updated) == (T0 + 2, T0 + 4)
    await store.put_alias("acme", "resize", "beta", ((2, 1.0),), T0 + 5)
    assert [a.name for a in await store.list_aliases("acme", "resize")] == ["beta", "prod"]
    assert await store.put_alias("acme", "nothing", "prod", ((1, 1.0),), T0) is None
    assert await store.delete_alias("acme", "resize", "beta") is True
    assert await store.delete_alias("acme", "resize", "beta") is False
    assert await store.get_alias("acme", "resize", "beta") is None


async def test_pruning_keeps_the_newest_and_what_aliases_name(store: Store) -> None:
    codes = [f"def handler(e, c):\n    return {i}\n".encode() for i in range(6)]
    for i, code in enumerate(codes):
        await store.put_function(draft(code=code), T0 + i)
    await store.put_alias("acme", "resize", "pinned", ((2, 1.0),), T0 + 10)
    assert await store.prune_versions("acme", "resize", keep=3) == [1, 3]
    kept = [v.spec.version for v in await store.list_versions("acme", "resize")]
    assert kept == [6, 5, 4, 2]
    assert await store.get_code(hashlib.sha256(codes[0]).hexdigest()) is None  # unused now
    assert await store.get_code(hashlib.sha256(codes[1]).hexdigest()) == codes[1]
    assert await store.prune_versions("acme", "resize", keep=3) == []
    assert await store.prune_versions("acme", "resize", keep=0) == [4, 5]  # never the latest
    assert await store.get_function("acme", "resize") is not None


async def test_deleting_a_function_deletes_its_versions_and_aliases(store: Store) -> None:
    await store.put_function(draft(), T0)
    await store.put_function(draft(code=THUMB), T0 + 1)
    await store.put_alias("acme", "resize", "prod", ((1, 1.0),), T0 + 2)
    assert await store.delete_function("acme", "resize")
    assert await store.list_versions("acme", "resize") == []
    assert await store.list_aliases("acme", "resize") == []
    assert await store.get_code(hashlib.sha256(RESIZE).hexdigest()) is None
    again, created = await store.put_function(draft(code=THUMB), T0 + 3)  # a namesake
    assert created and again.spec.version == 1
    assert [v.spec.version for v in await store.list_versions("acme", "resize")] == [1]


async def test_concurrent_deploys_each_keep_their_version(store: Store, backend: Backend) -> None:
    peer = await backend.peer(store)
    await store.put_function(draft(), T0)
    await asyncio.gather(
        *(
            (store if i % 2 else peer).put_function(draft(timeout_s=float(i + 1)), T0 + i)
            for i in range(8)
        )
    )
    versions = await store.list_versions("acme", "resize")
    assert [v.spec.version for v in versions] == list(range(9, 0, -1))
