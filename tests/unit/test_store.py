"""The store suite: every Store method, on SQLite and on PostgreSQL alike.

Each test runs once per backend through the `store` fixture. The PostgreSQL run needs
NIMBUS_TEST_POSTGRES_URL (`make test` starts a server with scripts/ensure-postgres.sh);
without it that run fails under CI=true and is skipped elsewhere. Every PostgreSQL test
gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from invoker.api import Activation, Status
from invoker.metering import meter_activation
from invoker.store.base import FunctionDraft, NodeLease, Rule, Store, Trigger
from invoker.store.factory import open_store
from invoker.store.postgres import PostgresStore
from invoker.store.sqlite import SqliteStore

PG_ENV = "NIMBUS_TEST_POSTGRES_URL"
T0 = 1_750_000_000.0  # a wall-clock second, mid-2025

RESIZE = b"from PIL import Image\n\ndef handler(event, ctx):\n    return {'w': event['w']}\n"
THUMB = b"def handler(event, ctx):\n    return {'thumb': True}\n"


class Backend:
    """One database, and more handles onto it: another gateway, or the same one restarted."""

    def __init__(self, kind: str, make: Callable[[], Store]) -> None:
        self.kind = kind
        self._make = make
        self._handles: list[Store] = []

    async def connect(self) -> Store:
        """A new, opened handle on the same database."""
        store = self._make()
        await store.open()
        self._handles.append(store)
        return store

    async def peer(self, store: Store) -> Store:
        """What a second gateway would use: its own handle where the backend is shared.

        SQLite is one gateway's file, served by one store: its peer is that store.
        """
        return store if self.kind == "sqlite" else await self.connect()

    async def stop(self, store: Store) -> None:
        """The gateway holding `store` goes away."""
        self._handles.remove(store)
        await store.close()

    async def stop_all(self) -> None:
        while self._handles:
            await self.stop(self._handles[-1])


BACKEND = pytest.StashKey[Backend]()


def postgres_url() -> str:
    """The test server's URL; its absence fails in CI and skips elsewhere."""
    url = os.environ.get(PG_ENV)
    if url:
        return url
    why = (
        f"{PG_ENV} is not set, so the PostgreSQL store is not tested: run "
        "`bash scripts/ensure-postgres.sh` (as root) and export "
        f"{PG_ENV}=postgresql://nimbus:nimbus@127.0.0.1:5432/nimbus_test"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of each backend."""
    schema: str | None = None
    if request.param == "sqlite":
        path = tmp_path / "nimbus.db"
        backend = Backend("sqlite", lambda: SqliteStore(path))
    else:
        url = postgres_url()
        schema = f"nimbus_test_{secrets.token_hex(6)}"
        backend = Backend("postgres", lambda: PostgresStore(url, schema=schema))
    request.node.stash[BACKEND] = backend
    try:
        first = await backend.connect()
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL cannot be used: {exc!r}")
    try:
        yield first
    finally:
        await backend.stop_all()
        if schema is not None:
            con = await asyncpg.connect(postgres_url())
            try:
                await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await con.close()


@pytest.fixture
def backend(store: Store, request: pytest.FixtureRequest) -> Backend:
    """The database behind `store`."""
    found: Backend = request.node.stash[BACKEND]
    return found


def draft(
    name: str = "resize", *, tenant: str = "acme", code: bytes = RESIZE, **fields: Any
) -> FunctionDraft:
    values: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "runtime": "python:3.11",
        "handler": "main.handler",
        "code_kind": "source",
        "code": code,
        "memory_mb": 256,
        "timeout_s": 30.0,
        "concurrency": 1,
        "env": {"BUCKET": "photos", "GREETING": "grüß dich"},
        "network": False,
    }
    values.update(fields)
    return FunctionDraft(**values)


def finished(
    aid: str, *, tenant: str = "acme", function: str = "resize", start: float = T0, **fields: Any
) -> Activation:
    """A successful synchronous call as the invoker records it."""
    activation = Activation(
        id=aid,
        tenant=tenant,
        function=function,
        version=1,
        status=Status.SUCCESS,
        result={"width": 640, "tags": ["jpeg", "ünïcode"], "ratio": 0.75, "nested": {"a": None}},
        error=None,
        logs=["resizing 1920x1080", "done"],
        start=start,
        end=start + 0.19,
        duration_ms=187.25,
        init_ms=0.0,
        wait_ms=0.5,
        cold_start=False,
        memory_mb=384,
        node="node-a",
        trigger=None,
        peak_memory_mb=41.5,
        cpu_seconds=0.12,
        attempts=0,
        dead_letter=False,
    )
    return replace(activation, **fields)


def pending(
    aid: str, *, tenant: str = "acme", function: str = "resize", **fields: Any
) -> Activation:
    """An accepted async call that has not run."""
    activation = Activation(
        id=aid,
        tenant=tenant,
        function=function,
        version=1,
        status=Status.PENDING,
        result=None,
        error=None,
        logs=[],
        start=None,
        end=None,
        duration_ms=None,
        init_ms=None,
        wait_ms=None,
        cold_start=None,
        memory_mb=384,
    )
    return replace(activation, **fields)


def usage_of(activation: Activation) -> dict[str, Any]:
    return meter_activation(activation).to_row()


def trigger(name: str = "nightly", *, tenant: str = "acme", **fields: Any) -> Trigger:
    values: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "type": "schedule",
        "config": {"cron": "0 3 * * *", "timezone": "UTC"},
        "secret_hash": None,
        "last_fire": None,
        "created": T0,
        "updated": T0,
    }
    values.update(fields)
    return Trigger(**values)


def rule(
    name: str, trigger_name: str, function: str = "resize", *, tenant: str = "acme", **fields: Any
) -> Rule:
    values: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "trigger": trigger_name,
        "function": function,
        "enabled": True,
        "created": T0,
        "updated": T0,
    }
    values.update(fields)
    return Rule(**values)


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
    assert await store.get_code(replaced) is None  # no function uses it any more
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


# activations


async def test_an_activation_keeps_every_field(store: Store) -> None:
    ok = finished("a-ok")
    failed = finished(
        "a-failed",
        status=Status.APPLICATION_ERROR,
        result=None,
        error="Traceback (most recent call last):\n  ValueError: not an image",
        cold_start=True,
        init_ms=812.5,
        peak_memory_mb=None,
        cpu_seconds=None,
        node=None,
        trigger="uploads",
    )
    falsy = finished("a-falsy", result=0, logs=[])
    queued = pending("a-pending", trigger="nightly", attempts=2, dead_letter=True)
    for activation in (ok, failed, falsy, queued):
        await store.save_activation(activation)
    for activation in (ok, failed, falsy, queued):
        assert await store.get_activation("acme", activation.id) == activation
    assert await store.get_activation("acme", "a-unknown") is None


async def test_saving_again_updates_the_activation_in_place(store: Store) -> None:
    await store.save_activation(pending("a1"))
    await store.save_activation(pending("a2"))
    done = finished("a1", attempts=1, trigger=None)
    await store.save_activation(done)
    assert await store.get_activation("acme", "a1") == done
    listed = await store.list_activations("acme", None, 10)
    # Still one record each, and an update does not move a1 ahead of a2.
    assert [a.id for a in listed] == ["a2", "a1"]
    assert listed[1] == done


async def test_activations_are_listed_newest_first(store: Store) -> None:
    # Saved in this order, with wall-clock starts that disagree: the order saved wins.
    order = [("a1", "resize", T0 + 5), ("a2", "thumbnail", T0), ("a3", "resize", T0 + 1)]
    for aid, function, start in order:
        await store.save_activation(finished(aid, function=function, start=start))
    await store.save_activation(finished("a4", start=T0 + 9))
    assert [a.id for a in await store.list_activations("acme", None, 10)] == [
        "a4",
        "a3",
        "a2",
        "a1",
    ]
    assert [a.id for a in await store.list_activations("acme", None, 2)] == ["a4", "a3"]
    assert [a.id for a in await store.list_activations("acme", "resize", 10)] == [
        "a4",
        "a3",
        "a1",
    ]
    assert [a.id for a in await store.list_activations("acme", "thumbnail", 10)] == ["a2"]
    assert await store.list_activations("acme", "unknown", 10) == []


async def test_activations_are_private_to_their_tenant(store: Store) -> None:
    await store.save_activation(finished("a-acme"))
    await store.save_activation(finished("a-globex", tenant="globex"))
    assert await store.get_activation("globex", "a-acme") is None
    assert await store.get_activation("acme", "a-globex") is None
    assert [a.id for a in await store.list_activations("globex", None, 10)] == ["a-globex"]
    assert [a.id for a in await store.list_activations("globex", "resize", 10)] == ["a-globex"]


async def test_a_write_behind_is_seen_by_the_next_call(store: Store) -> None:
    running = finished("a1", status=Status.RUNNING, result=None, end=None)
    done = finished("a1")
    await store.save_activation(running, wait=False)
    await store.save_activation(done, usage_of(done), wait=False)
    assert await store.get_activation("acme", "a1") == done
    assert [a.id for a in await store.list_activations("acme", None, 10)] == ["a1"]
    assert await store.list_usage("acme", T0, T0 + 1) == [meter_activation(done)]


async def test_an_error_message_with_a_nul_character_is_kept(store: Store) -> None:
    raw = "ValueError: bad header b'\x00\x01'"
    await store.save_activation(finished("a1", status=Status.APPLICATION_ERROR, error=raw))
    got = await store.get_activation("acme", "a1")
    assert got is not None and got.error is not None
    # PostgreSQL text cannot hold NUL: it may come back as U+FFFD, the rest intact.
    assert got.error.replace("\ufffd", "\x00") == raw


# usage


async def test_each_finished_attempt_bills_one_exact_record(store: Store) -> None:
    first = finished("a1", attempts=1, status=Status.TIMEOUT, duration_ms=30_000.0)
    await store.save_activation(first, usage_of(first))
    await store.save_activation(first, usage_of(first))  # the same attempt saved twice
    second = finished("a1", attempts=2, start=T0 + 60, duration_ms=1.0625, memory_mb=1000)
    await store.save_activation(second, usage_of(second))
    records = await store.list_usage("acme", T0, T0 + 3600)
    assert records == [meter_activation(first), meter_activation(second)]
    # GB-seconds come back as the exact Decimals metering computed.
    assert [r.gb_seconds for r in records] == [Decimal("11.25"), Decimal("0.001953125")]
    assert all(isinstance(r.gb_seconds, Decimal) for r in records)
    # A sync call (attempts 0) bills as attempt 1.
    sync = finished("a2", start=T0 + 120)
    await store.save_activation(sync, usage_of(sync))
    await store.save_activation(replace(sync, attempts=1), usage_of(sync))
    assert [r.activation_id for r in await store.list_usage("acme", T0, T0 + 3600)] == [
        "a1",
        "a1",
        "a2",
    ]


async def test_usage_is_listed_by_start_window_and_tenant(store: Store) -> None:
    starts = {"a0": T0 - 0.001, "a1": T0, "a2": T0 + 30, "a3": T0 + 60}
    for aid, start in sorted(starts.items(), key=lambda kv: -kv[1]):  # saved out of order
        done = finished(aid, start=start)
        await store.save_activation(done, usage_of(done))
    other = finished("g1", tenant="globex", start=T0 + 10)
    await store.save_activation(other, usage_of(other))
    await store.save_activation(finished("no-usage", start=T0 + 5))

    in_window = await store.list_usage("acme", T0, T0 + 60)  # from inclusive, to exclusive
    assert [r.activation_id for r in in_window] == ["a1", "a2"]
    assert [r.activation_id for r in await store.list_usage(None, T0, T0 + 60)] == [
        "a1",
        "g1",
        "a2",
    ]
    assert [r.activation_id for r in await store.list_usage("globex", 0, T0 * 2)] == ["g1"]
    assert await store.list_usage("initech", 0, T0 * 2) == []


# the durable queue


async def test_an_enqueued_call_waits_then_is_claimed_once(store: Store) -> None:
    call = pending("q1", trigger="uploads")
    await store.enqueue(call, {"key": "cat.jpg", "size": [640, 480]}, T0 + 10)
    assert await store.get_activation("acme", "q1") == call
    assert (await store.queue_depth(), await store.next_due()) == (1, T0 + 10)
    assert await store.claim(T0 + 9.999, 10) == []  # not due yet

    (claimed,) = await store.claim(T0 + 10, 10)
    assert (claimed.activation_id, claimed.tenant, claimed.function) == ("q1", "acme", "resize")
    assert dict(claimed.args) == {"key": "cat.jpg", "size": [640, 480]}
    assert (claimed.trigger, claimed.attempts, claimed.created) == ("uploads", 0, T0 + 10)
    running = await store.get_activation("acme", "q1")
    assert running is not None and running.status is Status.RUNNING
    assert await store.claim(T0 + 39, 10) == []  # never handed out twice while leased
    assert (await store.queue_depth(), await store.next_due()) == (1, None)


async def test_claim_takes_due_calls_oldest_first_up_to_the_limit(store: Store) -> None:
    due = {"late": T0 + 3, "early": T0 + 1, "future": T0 + 100, "middle": T0 + 2}
    for aid, not_before in due.items():
        await store.enqueue(pending(aid), {}, not_before)
    assert [c.activation_id for c in await store.claim(T0 + 50, 2)] == ["early", "middle"]
    assert await store.next_due() == T0 + 3
    assert [c.activation_id for c in await store.claim(T0 + 50, 2)] == ["late"]
    assert await store.next_due() == T0 + 100
    assert await store.queue_depth() == 4


async def test_a_failed_attempt_is_retried_and_the_last_one_leaves_the_queue(
    store: Store,
) -> None:
    await store.enqueue(pending("q1"), {"n": 1}, T0)
    await store.claim(T0, 1)
    failed = finished(
        "q1", attempts=1, status=Status.PENDING, error="attempt 1 failed (timeout); retrying"
    )
    await store.finish_attempt(failed, usage_of(replace(failed, status=Status.TIMEOUT)), T0 + 30)
    assert await store.get_activation("acme", "q1") == failed
    assert (await store.queue_depth(), await store.next_due()) == (1, T0 + 30)
    assert await store.claim(T0 + 29, 1) == []

    (retry,) = await store.claim(T0 + 30, 1)
    assert (retry.attempts, dict(retry.args)) == (1, {"n": 1})
    done = finished("q1", attempts=2, start=T0 + 31)
    await store.finish_attempt(done, usage_of(done), None)
    assert await store.get_activation("acme", "q1") == done
    assert (await store.queue_depth(), await store.next_due()) == (0, None)
    assert await store.claim(T0 + 1000, 10) == []
    assert [r.activation_id for r in await store.list_usage("acme", T0, T0 + 60)] == ["q1", "q1"]


async def test_a_deferred_call_goes_back_without_counting_an_attempt(store: Store) -> None:
    await store.enqueue(pending("q1"), {}, T0)
    await store.claim(T0, 1)
    await store.defer("q1", T0 + 5)
    waiting = await store.get_activation("acme", "q1")
    assert waiting is not None and waiting.status is Status.PENDING
    assert await store.next_due() == T0 + 5
    assert await store.claim(T0 + 4, 1) == []
    (again,) = await store.claim(T0 + 5, 1)
    assert again.attempts == 0
    assert await store.list_usage("acme", 0, T0 * 2) == []


async def test_running_calls_are_requeued_after_a_crash(store: Store, backend: Backend) -> None:
    for i, aid in enumerate(("q1", "q2", "q3")):
        await store.enqueue(pending(aid), {"i": i}, T0 + i)
    claimed = await store.claim(T0 + 10, 2, owner="gw-a")
    assert [c.activation_id for c in claimed] == ["q1", "q2"]
    await backend.stop(store)  # the gateway dies with q1 and q2 running

    restarted = await backend.connect()
    assert await restarted.requeue_running("gw-b") == 0  # not another gateway's to take
    assert await restarted.requeue_running("gw-a") == 2  # the same gateway, restarted
    assert await restarted.requeue_running("gw-a") == 0
    for aid in ("q1", "q2", "q3"):
        got = await restarted.get_activation("acme", aid)
        assert got is not None and got.status is Status.PENDING
    claimed = await restarted.claim(T0 + 10, 10, owner="gw-a")
    # q1 and q2 lost an attempt with the gateway: it counts.
    assert [(c.activation_id, c.attempts, dict(c.args)) for c in claimed] == [
        ("q1", 1, {"i": 0}),
        ("q2", 1, {"i": 1}),
        ("q3", 0, {"i": 2}),
    ]


async def test_a_dead_gateways_calls_are_claimed_again_when_its_leases_run_out(
    store: Store, backend: Backend
) -> None:
    await store.enqueue(pending("q1"), {}, T0)
    await store.enqueue(pending("q2"), {}, T0)
    assert len(await store.claim(T0, 2, owner="gw-a", lease_s=30)) == 2
    peer = await backend.peer(store)
    assert await peer.claim(T0 + 29, 10, owner="gw-b") == []  # gw-a's leases hold
    await store.renew("gw-a", ["q1"], T0 + 60)  # gw-a is alive and still running q1
    await peer.renew("gw-b", ["q2"], T0 + 600)  # renewing what it does not hold changes nothing
    (taken,) = await peer.claim(T0 + 31, 10, owner="gw-b")  # q2's lease ran out
    assert taken.activation_id == "q2" and taken.attempts == 1  # gw-a's attempt was lost
    assert await peer.claim(T0 + 59, 10, owner="gw-b") == []
    (late,) = await peer.claim(T0 + 61, 10, owner="gw-b")
    assert late.activation_id == "q1"
    got = await store.get_activation("acme", "q1")
    assert got is not None and got.status is Status.RUNNING


async def test_concurrent_claimers_never_share_a_call(store: Store, backend: Backend) -> None:
    ids = [f"q{i:03d}" for i in range(120)]
    for i, aid in enumerate(ids):
        await store.enqueue(pending(aid, tenant=("acme", "globex")[i % 2]), {"i": i}, T0 + i)
    peer = await backend.peer(store)

    async def drain(handle: Store) -> list[str]:
        got: list[str] = []
        while batch := await handle.claim(T0 + 1000, 7):
            got += [c.activation_id for c in batch]
        return got

    claimed = await asyncio.gather(*(drain(store if i % 2 else peer) for i in range(6)))
    everything = [aid for batch in claimed for aid in batch]
    assert len(everything) == len(set(everything)), "a call was handed out twice"
    assert sorted(everything) == ids
    assert (await store.queue_depth(), await store.next_due()) == (120, None)


# nodes


async def test_a_node_lease_only_ever_records_its_release(store: Store) -> None:
    lease = NodeLease("node-a", "c5.large", 2.0, 4096, "0.0850", up_at=T0)
    await store.save_node_lease(lease)
    assert await store.node_leases(T0, T0 + 1) == [lease]
    # Saved again at release: only down_at changes, whatever else the caller passes.
    await store.save_node_lease(replace(lease, flavor="c5.xlarge", vcpu=4.0, down_at=T0 + 3600))
    assert await store.node_leases(T0, T0 + 1) == [replace(lease, down_at=T0 + 3600)]


async def test_node_leases_overlapping_a_window(store: Store) -> None:
    leases = [
        NodeLease("early", "small", 1.0, 2048, "0.0208", up_at=T0, down_at=T0 + 100),
        NodeLease("open", "large", 4.0, 16384, "0.1664", up_at=T0 + 50),
        NodeLease("late", "small", 1.0, 2048, "0.0208", up_at=T0 + 200, down_at=T0 + 300),
    ]
    for lease in reversed(leases):
        await store.save_node_lease(lease)

    def ids(found: list[NodeLease]) -> list[str]:
        return [lease.id for lease in found]

    assert await store.node_leases(T0, T0 + 1000) == leases  # ordered by up_at, exact prices
    assert ids(await store.node_leases(T0 + 100, T0 + 200)) == ["open"]  # [from, to)
    assert ids(await store.node_leases(T0 - 10, T0)) == []
    assert ids(await store.node_leases(T0 + 99, T0 + 201)) == ["early", "open", "late"]
    assert ids(await store.node_leases(T0 + 10_000, T0 + 20_000)) == ["open"]


# triggers and rules


async def test_a_replaced_trigger_keeps_its_history(store: Store) -> None:
    nightly = trigger()
    assert await store.put_trigger(nightly) is True
    assert await store.get_trigger("acme", "nightly") == nightly
    await store.mark_fired("acme", "nightly", T0 + 86_400)

    hourly = trigger(
        config={"cron": "0 * * * *"}, created=T0 + 500, updated=T0 + 500, last_fire=None
    )
    assert await store.put_trigger(hourly) is False
    got = await store.get_trigger("acme", "nightly")
    assert got == replace(hourly, created=T0, last_fire=T0 + 86_400)
    assert got is not None and got.to_json()["cron"] == "0 * * * *"


async def test_triggers_are_listed_by_tenant_and_type(store: Store) -> None:
    made = [
        trigger("nightly"),
        trigger("uploads", type="bucket", config={"bucket": "photos", "events": ["put"]}),
        trigger("github", type="http", config={}, secret_hash="sha256:aa"),
        trigger("hourly", tenant="globex", config={"cron": "0 * * * *"}),
    ]
    for t in made:
        await store.put_trigger(t)

    def names(found: list[Trigger]) -> list[tuple[str, str]]:
        return [(t.tenant, t.name) for t in found]

    assert names(await store.list_triggers("acme")) == [
        ("acme", "github"),
        ("acme", "nightly"),
        ("acme", "uploads"),
    ]
    assert names(await store.list_triggers(None, "schedule")) == [
        ("acme", "nightly"),
        ("globex", "hourly"),
    ]
    assert names(await store.list_triggers("globex", "bucket")) == []
    assert len(await store.list_triggers(None)) == 4
    assert await store.get_trigger("globex", "nightly") is None


async def test_a_webhook_secret_finds_its_trigger(store: Store) -> None:
    hook = trigger("github", type="http", config={}, secret_hash="sha256:aa")
    await store.put_trigger(hook)
    await store.put_trigger(trigger("nightly"))  # no secret
    assert await store.trigger_by_secret("sha256:aa") == hook
    assert await store.trigger_by_secret("sha256:bb") is None
    rotated = replace(hook, secret_hash="sha256:bb", updated=T0 + 1)
    await store.put_trigger(rotated)
    assert await store.trigger_by_secret("sha256:aa") is None
    assert await store.trigger_by_secret("sha256:bb") == rotated


async def test_deleting_a_trigger_deletes_the_rules_that_name_it(store: Store) -> None:
    await store.put_trigger(trigger("nightly"))
    await store.put_trigger(trigger("uploads", type="bucket", config={"bucket": "photos"}))
    await store.put_trigger(trigger("nightly", tenant="globex"))
    for r in (
        rule("report", "nightly", "report"),
        rule("cleanup", "nightly", "cleanup"),
        rule("thumbs", "uploads", "thumbnail"),
        rule("report", "nightly", "report", tenant="globex"),
    ):
        await store.put_rule(r)

    assert await store.delete_trigger("acme", "nightly") is True
    assert await store.delete_trigger("acme", "nightly") is False
    assert await store.get_trigger("acme", "nightly") is None
    assert [r.name for r in await store.list_rules("acme")] == ["thumbs"]
    assert await store.get_rule("acme", "report") is None
    # Another tenant's trigger and rule of the same names are untouched.
    assert await store.get_trigger("globex", "nightly") is not None
    assert [r.name for r in await store.list_rules("globex")] == ["report"]


async def test_marking_fired_touches_only_that_trigger(store: Store) -> None:
    await store.put_trigger(trigger("nightly"))
    await store.put_trigger(trigger("hourly"))
    await store.put_trigger(trigger("nightly", tenant="globex"))
    assert await store.mark_fired("acme", "nightly", T0 + 3 * 3600) is True
    assert await store.mark_fired("acme", "nightly", T0 + 27 * 3600) is True
    assert await store.mark_fired("acme", "missing", T0) is False  # nothing to mark, no error
    fired = {(t.tenant, t.name): t.last_fire for t in await store.list_triggers(None)}
    assert fired == {
        ("acme", "hourly"): None,
        ("acme", "nightly"): T0 + 27 * 3600,
        ("globex", "nightly"): None,
    }


async def test_a_schedule_slot_is_claimed_once_and_never_moves_back(store: Store) -> None:
    # Two gateways (or a loop and a late caller) racing for one slot: one wins, and an
    # earlier slot can never overwrite a later one.
    await store.put_trigger(trigger("nightly"))
    assert await store.mark_fired("acme", "nightly", T0 + 3600) is True
    assert await store.mark_fired("acme", "nightly", T0 + 3600) is False
    assert await store.mark_fired("acme", "nightly", T0 + 60) is False
    (fired,) = [t.last_fire for t in await store.list_triggers("acme")]
    assert fired == T0 + 3600


async def test_a_replaced_rule_keeps_its_created_time(store: Store) -> None:
    report = rule("report", "nightly", "report")
    assert await store.put_rule(report) is True
    assert await store.get_rule("acme", "report") == report
    moved = rule("report", "hourly", "summary", enabled=False, created=T0 + 9, updated=T0 + 9)
    assert await store.put_rule(moved) is False
    assert await store.get_rule("acme", "report") == replace(moved, created=T0)
    assert await store.delete_rule("acme", "report") is True
    assert await store.delete_rule("acme", "report") is False
    assert await store.get_rule("acme", "report") is None


async def test_rules_are_listed_by_name_within_their_tenant(store: Store) -> None:
    for r in (
        rule("thumbs", "uploads", "thumbnail"),
        rule("cleanup", "nightly", "cleanup"),
        rule("report", "nightly", "report", enabled=False),
        rule("spy", "nightly", "report", tenant="globex"),
    ):
        await store.put_rule(r)
    assert [r.name for r in await store.list_rules("acme")] == ["cleanup", "report", "thumbs"]
    assert [r.name for r in await store.list_rules("acme", "nightly")] == ["cleanup", "report"]
    assert [r.enabled for r in await store.list_rules("acme", "nightly")] == [True, False]
    assert await store.list_rules("acme", "unknown") == []
    assert [r.name for r in await store.list_rules("globex")] == ["spy"]
    assert await store.get_rule("globex", "cleanup") is None
    assert await store.delete_rule("globex", "cleanup") is False
    assert await store.get_rule("acme", "cleanup") is not None


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


async def test_a_gateway_that_lost_its_lease_leaves_the_queue_to_the_new_holder(
    store: Store, backend: Backend
) -> None:
    await store.enqueue(pending("q1"), {}, T0)
    await store.claim(T0, 1, owner="gw-a", lease_s=30)
    peer = await backend.peer(store)
    (taken,) = await peer.claim(T0 + 31, 1, owner="gw-b")  # gw-a stalled past its lease
    done = replace(pending("q1"), status=Status.SUCCESS, attempts=1)
    await store.finish_attempt(done, None, None, owner="gw-a")  # gw-a finishes late
    await store.defer("q1", T0 + 99, owner="gw-a")
    assert await store.queue_depth() == 1  # still gw-b's to finish
    got = await store.get_activation("acme", "q1")
    assert got is not None and got.status is Status.SUCCESS  # gw-a's attempt is recorded
    assert await peer.claim(T0 + 40, 1, owner="gw-c") == []  # and gw-b's lease holds
    await peer.finish_attempt(done, None, None, owner="gw-b")
    assert await store.queue_depth() == 0
    assert taken.activation_id == "q1"


async def test_a_store_made_before_leases_gains_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the queue table as it was before leases
        db.execute(
            "CREATE TABLE queue (activation_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
            "function TEXT NOT NULL, args TEXT NOT NULL, trigger TEXT, attempts INTEGER NOT "
            "NULL DEFAULT 0, not_before REAL NOT NULL, state TEXT NOT NULL, created REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO queue VALUES ('old', 'acme', 'resize', '{}', NULL, 0, 1, 'running', 1)"
        )
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.requeue_running("gw-a") == 1  # unowned running calls come back
        (call,) = await store.claim(T0, 5, owner="gw-a")
        assert call.activation_id == "old"
    finally:
        await store.close()
