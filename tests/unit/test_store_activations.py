"""The store's activation records: every field kept, updates, listing and privacy.

Uses store_suite's `store` and `backend` fixtures: each test runs on SQLite and on
PostgreSQL (at NIMBUS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

from invoker.api import Status
from invoker.metering import meter_activation
from invoker.store.base import Store
from tests.unit import store_suite
from tests.unit.store_suite import T0, finished, pending, usage_of

store = store_suite.store


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
