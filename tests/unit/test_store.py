"""The store suite: tenants, surviving a restart, and choosing a store from a URL.

Every Store method is tested on SQLite and on PostgreSQL alike (store_suite's `store`
and `backend` fixtures; PostgreSQL at NIMBUS_TEST_POSTGRES_URL), split by what it stores:
test_store_functions, _activations, _usage, _queue and _triggers (and _lifecycle,
_limits, _sql, which still import the suite's names from here).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from invoker.metering import meter_activation
from invoker.store.base import NodeLease, Store
from invoker.store.factory import open_store
from invoker.store.postgres import PostgresStore
from tests.unit import store_suite
from tests.unit.store_suite import (
    RESIZE,
    T0,
    Backend,
    draft,
    finished,
    pending,
    rule,
    trigger,
    usage_of,
)

backend = store_suite.backend
store = store_suite.store


# tenants


async def test_a_tenant_name_and_a_key_are_each_taken_once(store: Store) -> None:
    assert await store.create_tenant("acme", "hash-acme") is True
    assert await store.create_tenant("acme", "hash-other") is False
    assert await store.create_tenant("globex", "hash-acme") is False  # a key names one tenant
    assert await store.create_tenant("globex", "hash-globex") is True
    assert await store.tenant_for_key("hash-acme") == "acme"
    assert await store.tenant_for_key("hash-globex") == "globex"
    assert await store.tenant_for_key("hash-other") is None


async def test_concurrent_tenant_creation_has_one_winner(store: Store, backend: Backend) -> None:
    peer = await backend.peer(store)
    outcomes = await asyncio.gather(
        *((store if i % 2 else peer).create_tenant("acme", f"hash-{i}") for i in range(8))
    )
    assert sorted(outcomes) == [False] * 7 + [True]
    winner = outcomes.index(True)
    assert await store.tenant_for_key(f"hash-{winner}") == "acme"


# durability


async def test_everything_survives_a_restart(store: Store, backend: Backend) -> None:
    await store.create_tenant("acme", "hash-acme")
    stored, _ = await store.put_function(draft(), T0)
    done = finished("a1")
    await store.save_activation(done, usage_of(done))
    await store.enqueue(pending("q1"), {"n": 1}, T0)
    await store.put_trigger(trigger())
    await store.put_rule(rule("report", "nightly"))
    lease = NodeLease("node-a", "small", 1.0, 2048, "0.0208", up_at=T0)
    await store.save_node_lease(lease)
    await backend.stop(store)

    again = await backend.connect()  # opening an existing database keeps its data
    assert await again.tenant_for_key("hash-acme") == "acme"
    assert await again.get_function("acme", "resize") == stored
    assert await again.get_code(stored.spec.code_sha256) == RESIZE
    assert await again.get_activation("acme", "a1") == done
    assert await again.list_usage("acme", T0, T0 + 1) == [meter_activation(done)]
    assert [c.activation_id for c in await again.claim(T0, 10)] == ["q1"]
    assert await again.get_trigger("acme", "nightly") == trigger()
    assert await again.get_rule("acme", "report") == rule("report", "nightly")
    assert await again.node_leases(T0, T0 + 1) == [lease]


# choosing a store from the config's URL


async def test_open_store_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    for i, url in enumerate((None, "", "sqlite:", "sqlite://")):
        data_dir = tmp_path / f"data-{i}"
        store = open_store(url, data_dir)
        await store.open()
        assert await store.create_tenant("acme", "hash")
        await store.close()
        assert (data_dir / "nimbus.db").is_file(), url


async def test_open_store_takes_a_sqlite_path(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "state.db"
    for url, expected in (
        (f"sqlite://{absolute}", absolute),
        ("sqlite:relative/state.db", tmp_path / "data" / "relative" / "state.db"),
    ):
        store = open_store(url, tmp_path / "data")
        await store.open()
        await store.close()
        assert expected.is_file(), url


def test_open_store_picks_postgres_for_a_postgres_url(tmp_path: Path) -> None:
    for url in ("postgresql://nimbus:pw@db:5432/nimbus", "postgres://db/nimbus"):
        assert isinstance(open_store(url, tmp_path), PostgresStore)
    assert not (tmp_path / "nimbus.db").exists()


def test_open_store_rejects_other_urls_without_echoing_them(tmp_path: Path) -> None:
    for url in ("mysql://root:hunter2@db/nimbus", "hunter2"):
        with pytest.raises(ValueError) as info:
            open_store(url, tmp_path)
        assert "hunter2" not in str(info.value)
