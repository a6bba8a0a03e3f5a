"""Triggers and rules over HTTP: fan-out, webhooks (S3 format too), schedules, isolation."""

from __future__ import annotations

import asyncio
import time

from gateway.keys import PLATFORM
from tests.conftest import Api, Running

ECHO = "def handler(e):\n    return e\n"


async def settled(
    api: Api, ids: list[str], key: str | None = None, timeout: float = 30.0
) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        acts = []
        for activation_id in ids:
            status, act, _ = await api.call("GET", f"/v1/activations/{activation_id}", key=key)
            assert status == 200, act
            acts.append(act)
        if all(a["status"] not in ("pending", "running") for a in acts):
            return acts
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_fire_fans_out_to_every_enabled_rule(api: Api) -> None:
    await api.deploy("one", ECHO)
    await api.deploy("two", "def handler(e):\n    return {'two': e['n']}\n")
    status, trig, _ = await api.call("PUT", "/v1/triggers/orders", {"type": "http"})
    assert status == 201 and trig["type"] == "http" and trig["webhook"] is False
    for rule, fn in (("r1", "one"), ("r2", "two")):
        status, body, _ = await api.call(
            "PUT", f"/v1/rules/{rule}", {"trigger": "orders", "function": fn}
        )
        assert status == 201, body
    await api.call(
        "PUT", "/v1/rules/off", {"trigger": "orders", "function": "one", "enabled": False}
    )
    status, fired, _ = await api.call("POST", "/v1/triggers/orders/fire", {"n": 5})
    assert status == 202 and len(fired["activation_ids"]) == 2
    acts = await settled(api, fired["activation_ids"])
    assert sorted(str(a["result"]) for a in acts) == sorted([str({"n": 5}), str({"two": 5})])
    assert {a["trigger"] for a in acts} == {"orders"}
    status, rules, _ = await api.call("GET", "/v1/rules")
    assert [r["name"] for r in rules["rules"]] == ["off", "r1", "r2"]
    assert (await api.call("DELETE", "/v1/triggers/orders"))[0] == 200
    assert (await api.call("GET", "/v1/rules"))[1] == {"rules": []}


async def test_webhook_needs_no_key_and_understands_s3(api: Api) -> None:
    await api.deploy("sink", ECHO)
    status, trig, _ = await api.call("PUT", "/v1/triggers/hook", {"type": "http", "webhook": True})
    assert status == 201 and trig["webhook_url"].startswith("/v1/hooks/")
    await api.call("PUT", "/v1/rules/hook-sink", {"trigger": "hook", "function": "sink"})
    s3 = {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "eventSource": "minio:s3",
                "s3": {
                    "bucket": {"name": "photos"},
                    "object": {"key": "summer/beach+day.jpg", "size": 12},
                },
            },
            {
                "eventName": "s3:ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "photos"}, "object": {"key": "old.jpg"}},
            },
        ]
    }
    async with api.session.post(api.url + trig["webhook_url"], json=s3) as resp:
        assert resp.status == 202
        fired = await resp.json()
    acts = await settled(api, fired["activation_ids"])
    results = sorted((a["result"]["type"], a["result"]["key"]) for a in acts)
    assert results == [("object.created", "summer/beach day.jpg"), ("object.deleted", "old.jpg")]
    async with api.session.post(api.url + "/v1/hooks/whk_wrong", json={}) as resp:
        assert resp.status == 404
    # The secret is shown once; updating keeps it, rotating replaces it.
    _, again, _ = await api.call("PUT", "/v1/triggers/hook", {"type": "http", "webhook": True})
    assert "webhook_url" not in again
    _, rotated, _ = await api.call(
        "PUT", "/v1/triggers/hook", {"type": "http", "webhook": True, "rotate_webhook": True}
    )
    async with api.session.post(api.url + trig["webhook_url"], json={}) as resp:
        assert resp.status == 404
    async with api.session.post(api.url + rotated["webhook_url"], json={}) as resp:
        assert resp.status == 202


async def test_schedule_fires_once_after_downtime(platform: Running) -> None:
    api = platform.api
    await api.deploy("tick", ECHO)
    body = {
        "type": "schedule",
        "cron": "*/5 * * * *",
        "timezone": "Europe/Berlin",
        "payload": {"job": "report"},
    }
    status, trig, _ = await api.call("PUT", "/v1/triggers/every5", body)
    assert status == 201, trig
    await api.call("PUT", "/v1/rules/tick-rule", {"trigger": "every5", "function": "tick"})
    engine = platform.app[PLATFORM].triggers
    created = trig["created"]
    # An injected clock, a minute past a slot 31-36 minutes later (so +10 s stays inside
    # that slot's window whatever second the trigger was made at): six or seven slots were
    # missed, exactly one fires; nothing more until the next slot.
    later = (int(created // 300) + 7) * 300 + 60
    assert await engine.run_schedules(later) == 1
    assert await engine.run_schedules(later + 10) == 0
    assert await engine.run_schedules(later + 5 * 60) == 1
    _, acts, _ = await api.call("GET", "/v1/activations?function=tick")
    ids = [a["activation_id"] for a in acts["activations"]]
    assert len(ids) == 2
    done = await settled(api, ids)
    assert all(
        a["result"]["type"] == "schedule.fired" and a["result"]["payload"] == {"job": "report"}
        for a in done
    )
    assert all(a["trigger"] == "every5" for a in done)


async def test_bad_triggers_and_rules(api: Api) -> None:
    cases = [
        ({"type": "carrier-pigeon"}, "type"),
        ({"type": "schedule", "cron": "61 * * * *"}, "cron"),
        ({"type": "schedule", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"type": "bucket", "bucket": "photos", "events": ["renamed"]}, "events"),
        ({"type": "http", "cron": "* * * * *"}, "cron"),
    ]
    for body, field in cases:
        status, payload, _ = await api.call("PUT", "/v1/triggers/t", body)
        assert status == 400 and payload["error"]["field"] == field, (body, payload)
    assert (await api.call("GET", "/v1/triggers"))[1] == {"triggers": []}
    await api.call("PUT", "/v1/triggers/t", {"type": "http"})
    status, payload, _ = await api.call("PUT", "/v1/rules/r", {"trigger": "nope", "function": "f"})
    assert status == 400 and payload["error"]["field"] == "trigger"
    status, payload, _ = await api.call("PUT", "/v1/rules/r", {"trigger": "t", "function": "ghost"})
    assert status == 400 and payload["error"]["field"] == "function"


async def test_another_tenants_trigger_never_fires_your_function(api: Api) -> None:
    key_a, key_b = await api.tenant("owner-a"), await api.tenant("intruder-b")
    await api.deploy("private", ECHO, key=key_a)
    await api.call("PUT", "/v1/triggers/t", {"type": "http", "webhook": True}, key=key_b)
    status, payload, _ = await api.call(
        "PUT", "/v1/rules/steal", {"trigger": "t", "function": "private"}, key=key_b
    )
    assert status == 400 and payload["error"]["field"] == "function"
    # Same trigger name in A: B's fire and webhook only reach B's (empty) rules.
    await api.call("PUT", "/v1/triggers/t", {"type": "http"}, key=key_a)
    await api.call("PUT", "/v1/rules/mine", {"trigger": "t", "function": "private"}, key=key_a)
    status, fired, _ = await api.call("POST", "/v1/triggers/t/fire", {}, key=key_b)
    assert status == 202 and fired["activation_ids"] == []
    assert (await api.call("POST", "/v1/triggers/t/fire", {}, key=key_a))[1]["activation_ids"]
    assert (await api.call("GET", "/v1/activations", key=key_b))[1] == {"activations": []}
