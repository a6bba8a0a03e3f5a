"""Tenants cannot crowd each other out: fair async queue, backlog, rate and concurrency limits.

All through HTTP on the real engine. Latencies are printed for the notes, never asserted:
the fairness assertion is about order (how many of the flood's calls finished before the
other tenant's one call), which does not depend on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.conftest import Api, Running, start_platform

SLOW = "import time\ndef handler(e):\n    time.sleep(0.3)\n    return e['i']\n"
QUICK = "def handler(e):\n    return 'hi'\n"
HOLD = "import time\ndef handler(e):\n    time.sleep(e.get('s', 0))\n    return 'held'\n"


async def put_limits(api: Api, tenant: str, **limits: Any) -> dict[str, Any]:
    status, body, _ = await api.call("PUT", f"/v1/tenants/{tenant}/limits", limits)
    assert status == 200, body
    return dict(body)


async def activations(api: Api, key: str, function: str) -> list[dict[str, Any]]:
    status, body, _ = await api.call(
        "GET", f"/v1/activations?function={function}&limit=1000", key=key
    )
    assert status == 200, body
    return list(body["activations"])


async def drained(api: Api, key: str, function: str, count: int) -> list[dict[str, Any]]:
    """Wait until `count` activations of the function have finished; return them."""
    deadline = time.monotonic() + 120
    while True:
        acts = await activations(api, key, function)
        done = [a for a in acts if a["status"] not in ("pending", "running")]
        if len(done) >= count:
            return done
        assert time.monotonic() < deadline, f"{len(done)} of {count} finished"
        await asyncio.sleep(0.2)


async def finished(api: Api, key: str, activation_id: str) -> dict[str, Any]:
    """Poll one of the tenant's activations until it has run; return it."""
    deadline = time.monotonic() + 120
    while True:
        status, act, _ = await api.call("GET", f"/v1/activations/{activation_id}", key=key)
        assert status == 200, act
        if act["status"] not in ("pending", "running"):
            return dict(act)
        assert time.monotonic() < deadline, f"still {act['status']}"
        await asyncio.sleep(0.02)


async def async_latency(api: Api, key: str) -> tuple[float, dict[str, Any]]:
    """Submit one async call of `quick`; its latency from submit to end, and its activation."""
    submitted = time.time()
    status, body, _ = await api.call("POST", "/v1/functions/quick/invoke?async=true", key=key)
    assert status == 202, body
    act = await finished(api, key, body["activation_id"])
    assert act["status"] == "success", act
    return act["end"] - submitted, act


async def test_a_flood_of_async_calls_neither_delays_another_tenant_nor_passes_its_backlog(
    platform: Running,
) -> None:
    api = platform.api
    ann, bob = await api.tenant("ann"), await api.tenant("bob")
    await api.deploy("slow", SLOW, key=ann, concurrency=16)
    await api.deploy("quick", QUICK, key=bob)
    assert (await api.invoke("slow", {"i": -1}, key=ann))[0] == 200  # warm: one container
    assert (await api.invoke("quick", key=bob))[0] == 200  # warm: latencies without a start
    quiet, _ = await async_latency(api, bob)

    limits = await put_limits(api, "ann", backlog=100)
    assert limits["backlog"] == 100 and limits["effective"]["backlog"] == 100
    gate = asyncio.Semaphore(32)

    async def enqueue(i: int) -> tuple[int, Any, dict[str, str]]:
        async with gate:
            return await api.call("POST", "/v1/functions/slow/invoke?async=true", {"i": i}, key=ann)

    answers = await asyncio.gather(*(enqueue(i) for i in range(250)))
    b_submitted = time.time()
    loaded, b_act = await async_latency(api, bob)

    accepted = {body["activation_id"] for status, body, _ in answers if status == 202}
    refused = [(body, headers) for status, body, headers in answers if status == 429]
    assert len(accepted) + len(refused) == 250
    assert len(accepted) >= 100  # the backlog admits 100 queued or running at any time
    assert refused, "250 calls of 0.3 s each in a second cannot all fit a backlog of 100"
    for body, headers in refused:
        assert int(headers["Retry-After"]) >= 1
        assert body["error"]["type"] == "throttled" and body["error"]["limit"] == "backlog"

    done = await drained(api, ann, "slow", len(accepted) + 1)
    flood = [a for a in done if a["activation_id"] in accepted]
    # Nothing accepted was lost, nothing refused was stored, each ran once.
    assert len(flood) == len(accepted) and len(done) == len(accepted) + 1
    assert all(a["status"] == "success" and a["attempts"] == 1 for a in flood)
    # Fairness, as an order: of ann's calls still queued (not started) when bob's call came,
    # FIFO would finish every one before it; fair claims run bob's at once.
    queued = [a for a in flood if a["start"] > b_submitted]
    ahead = [a for a in queued if a["end"] < b_act["end"]]
    print(
        f"\nbob's async call: {quiet * 1000:.0f} ms quiet, {loaded * 1000:.0f} ms behind ann's "
        f"flood ({len(accepted)} accepted, {len(refused)} refused with 429; {len(queued)} "
        f"queued when bob's came, {len(ahead)} of them finished before it)"
    )
    assert len(queued) >= 40, "the flood drained before bob's call came: nothing to test"
    assert len(ahead) <= 0.2 * len(queued)
    _, usage, _ = await api.call("GET", "/v1/tenants/ann/limits", key=ann)
    assert usage["backlog_used"] == 0 and usage["dropped_trigger_events"] == 0


async def test_rate_and_concurrency_limits_are_per_tenant_admin_set_and_survive_a_restart(
    runtime_images: dict[str, str], tmp_path: Path
) -> None:
    runner, running = await start_platform(tmp_path / "data", stem_cells=())
    try:
        api = running.api
        ann, bob = await api.tenant("ann"), await api.tenant("bob")
        for key in (ann, bob):
            await api.deploy("quick", QUICK, key=key)
            await api.deploy("hold", HOLD, key=key, concurrency=4)
        await check_the_api_contract(api, ann)
        await put_limits(api, "ann", rate_per_s=0.2, burst=3, concurrency=1)
        await check_the_rate(api, ann, bob)
        await check_concurrency(api, ann, bob)
    finally:
        await running.api.session.close()
        await runner.cleanup()

    runner, running = await start_platform(tmp_path / "data", stem_cells=())
    try:
        api = running.api
        _, limits, _ = await api.call("GET", "/v1/tenants/ann/limits")
        assert (limits["rate_per_s"], limits["burst"], limits["concurrency"]) == (0.2, 3, 1)
        assert limits["backlog"] is None and limits["effective"]["backlog"] == 1000
        statuses = [(await api.invoke("quick", key=ann))[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # a fresh gateway: a full bucket, same rate
    finally:
        await running.api.session.close()
        await runner.cleanup()


async def check_the_api_contract(api: Api, ann: str) -> None:
    """Who may read and set limits, and what bad input answers."""
    status, own, _ = await api.call("GET", "/v1/tenants/ann/limits", key=ann)
    assert status == 200 and own["tenant"] == "ann"
    assert {k: own[k] for k in ("concurrency", "rate_per_s", "burst", "backlog")} == dict.fromkeys(
        ("concurrency", "rate_per_s", "burst", "backlog")
    )
    assert own["effective"] == {
        "concurrency": 100,
        "rate_per_s": None,
        "burst": None,
        "backlog": 1000,
    }
    assert (await api.call("GET", "/v1/tenants/bob/limits", key=ann))[0] == 404
    assert (await api.call("PUT", "/v1/tenants/ann/limits", {"backlog": 5}, key=ann))[0] == 403
    assert (await api.call("PUT", "/v1/tenants/nobody/limits", {"backlog": 5}))[0] == 404
    for body, field in (
        ({"backlog": 0}, "backlog"),
        ({"rate_per_s": "fast"}, "rate_per_s"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"burst": -2}, "burst"),
        ({"backlog": 5, "tenant": "bob"}, "tenant"),
    ):
        status, error, _ = await api.call("PUT", "/v1/tenants/ann/limits", body)
        assert status == 400 and error["error"]["field"] == field, (body, error)
    status, error, _ = await api.call("PUT", "/v1/tenants/ann/limits", [1])
    assert status == 400 and error["error"]["field"] == "body"
    _, unchanged, _ = await api.call("GET", "/v1/tenants/ann/limits")
    assert unchanged["backlog"] is None  # a refused PUT changed nothing


async def check_the_rate(api: Api, ann: str, bob: str) -> None:
    """Past its burst a tenant gets 429 with Retry-After, sync and async; others do not."""
    statuses = [(await api.invoke("quick", key=ann))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, body, headers = await api.invoke("quick", key=ann)
    assert status == 429 and body["error"]["limit"] == "rate"
    assert int(headers["Retry-After"]) >= 1
    status, body, _ = await api.call("POST", "/v1/functions/quick/invoke?async=true", key=ann)
    assert status == 429 and body["error"]["limit"] == "rate"
    assert all([(await api.invoke("quick", key=bob))[0] == 200 for _ in range(10)])


async def check_concurrency(api: Api, ann: str, bob: str) -> None:
    """A tenant's own concurrency: its second call at once is refused, another's is not."""
    await put_limits(api, "ann", concurrency=1)  # and no rate limit: only concurrency counts
    results = await asyncio.gather(*(api.invoke("hold", {"s": 1.5}, key=ann) for _ in range(2)))
    assert sorted(r[0] for r in results) == [200, 429]
    refused = next(r for r in results if r[0] == 429)
    assert refused[1]["error"]["type"] == "throttled" and int(refused[2]["Retry-After"]) >= 1
    results = await asyncio.gather(*(api.invoke("hold", {"s": 0.5}, key=bob) for _ in range(2)))
    assert [r[0] for r in results] == [200, 200]
    await put_limits(api, "ann", rate_per_s=0.2, burst=3, concurrency=1)  # for the restart


async def test_triggers_past_the_backlog_answer_429_or_count_the_dropped_event(
    platform: Running,
) -> None:
    api = platform.api
    ann = await api.tenant("ann")
    await api.deploy("hold", HOLD, key=ann)
    await put_limits(api, "ann", backlog=1)
    for path, body in (
        ("/v1/triggers/poke", {"type": "http"}),
        ("/v1/triggers/uploads", {"type": "bucket", "bucket": "inbox"}),
        ("/v1/rules/poke-hold", {"trigger": "poke", "function": "hold"}),
        ("/v1/rules/uploads-hold", {"trigger": "uploads", "function": "hold"}),
        ("/v1/buckets/inbox", None),
    ):
        status, answer, _ = await api.call("PUT", path, body, key=ann)
        assert status in (200, 201), answer
    status, held, _ = await api.call(
        "POST", "/v1/functions/hold/invoke?async=true", {"s": 3}, key=ann
    )
    assert status == 202  # the backlog of one is full while this runs

    status, body, headers = await api.call("POST", "/v1/triggers/poke/fire", {}, key=ann)
    assert status == 429 and body["error"]["limit"] == "backlog"
    assert int(headers["Retry-After"]) >= 1
    status, _, _ = await api.call("PUT", "/v1/buckets/inbox/objects/a.txt", data=b"hello", key=ann)
    assert status == 201  # the object is stored; its event had no room and is counted
    _, limits, _ = await api.call("GET", "/v1/tenants/ann/limits", key=ann)
    assert limits["dropped_trigger_events"] == 1 and limits["backlog_used"] == 1
    assert len(await activations(api, ann, "hold")) == 1  # neither fire enqueued anything

    assert (await finished(api, ann, held["activation_id"]))["status"] == "success"
    status, body, _ = await api.call("POST", "/v1/triggers/poke/fire", {}, key=ann)
    assert status == 202 and len(body["activation_ids"]) == 1
