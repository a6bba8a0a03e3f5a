"""The store's triggers and rules.

Uses store_suite's `store` and `backend` fixtures: each test runs on SQLite and on
PostgreSQL (at NIMBUS_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from invoker.store.base import Store, Trigger
from tests.unit import store_suite
from tests.unit.store_suite import T0, Backend, rule, trigger

store = store_suite.store
backend = store_suite.backend


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


async def test_workers_racing_for_one_slot_on_their_own_connections_fire_it_once(
    store: Store, backend: Backend
) -> None:
    # `nimbus serve --workers N`: every worker runs the schedule loop on its own connection
    # to the same database, and all of them see the slot due at the same second.
    await store.put_trigger(trigger("nightly"))
    workers = [store, *[await backend.connect() for _ in range(3)]]
    for slot in (T0 + 3600, T0 + 7200):
        claims = await asyncio.gather(
            *(w.mark_fired("acme", "nightly", slot) for w in workers for _ in range(5))
        )
        assert claims.count(True) == 1, claims
    (fired,) = [t.last_fire for t in await workers[-1].list_triggers("acme")]
    assert fired == T0 + 7200


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
