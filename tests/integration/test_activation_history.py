"""Activation history over HTTP: byte-capped pages with a cursor, deletion, retention."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time

import pytest

from gateway.routes.activations import LIST_BUDGET_BYTES
from tests.conftest import Api, Running

BIG = "def handler(e):\n    print('x' * 2000)\n    return 'r' * e['n']\n"
SMALL = "def handler(e):\n    return e\n"


async def _get_raw(api: Api, path: str, key: str | None = None) -> tuple[int, bytes]:
    async with api.session.get(api.url + path, headers=api.headers(key)) as resp:
        return resp.status, await resp.read()


async def _history(api: Api, key: str) -> list[str]:
    """8 calls with 300 kB results and 3 small ones; their ids, newest first."""
    await api.deploy("big", BIG, key=key)
    await api.deploy("small", SMALL, key=key)
    ids = []
    for n in range(11):
        name, event = ("small", {"n": n}) if n % 3 == 2 else ("big", {"n": 300_000})
        status, body, headers = await api.invoke(name, event, key=key)
        assert status == 200, body
        ids.append(headers["X-Nimbus-Activation-Id"])
    return ids[::-1]


async def test_listing_pages_by_bytes_and_the_cursor_reaches_every_record(api: Api) -> None:
    key = await api.tenant("pager")
    ids = await _history(api, key)
    seen: list[str] = []
    path, truncated_pages = "/v1/activations?limit=1000", 0
    while True:
        status, raw = await _get_raw(api, path, key)
        assert status == 200, raw[:300]
        assert len(raw) <= LIST_BUDGET_BYTES  # never the whole history in one answer
        page = json.loads(raw)
        seen += [a["activation_id"] for a in page["activations"]]
        truncated_pages += bool(page.get("truncated"))
        if "next" not in page:
            break
        path = f"/v1/activations?limit=1000&cursor={page['next']}"
    assert seen == ids  # every record once, newest first
    assert truncated_pages >= 2
    # Ids are random: consecutive calls share no prefix and no counter.
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(a[:8] != b[:8] and a[-8:] != b[-8:] for a, b in itertools.pairwise(ids))

    # The count limit pages too, and filters carry over.
    status, page, _ = await api.call("GET", "/v1/activations?function=small&limit=2", key=key)
    assert [a["function"] for a in page["activations"]] == ["small", "small"]
    assert "truncated" not in page
    rest = await api.call(
        "GET", f"/v1/activations?function=small&limit=2&cursor={page['next']}", key=key
    )
    assert [a["activation_id"] for a in rest[1]["activations"]] == [ids[-3]]
    assert "next" not in rest[1]


async def test_a_cursor_is_opaque_and_the_callers_own(api: Api) -> None:
    key, other = await api.tenant("owner"), await api.tenant("stranger")
    await api.deploy("small", SMALL, key=key)
    for n in range(3):
        await api.invoke("small", {"n": n}, key=key)
    _, page, _ = await api.call("GET", "/v1/activations?limit=1", key=key)
    cursor = page["next"]
    status, body, _ = await api.call("GET", f"/v1/activations?cursor={cursor}", key=other)
    assert status == 400 and body["error"]["field"] == "cursor"
    for bad in ("x", "AAAA", cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")):
        status, body, _ = await api.call("GET", f"/v1/activations?cursor={bad}", key=key)
        assert status == 400 and body["error"]["field"] == "cursor", bad


async def test_a_tenant_deletes_its_activations_and_the_bill_stays(api: Api) -> None:
    key, other = await api.tenant("tidy"), await api.tenant("neighbour")
    await api.deploy("small", SMALL, key=key)
    await api.deploy("other", SMALL, key=key)
    ids = []
    for n in range(4):
        ids.append((await api.invoke("small", {"n": n}, key=key))[2]["X-Nimbus-Activation-Id"])
    kept = (await api.invoke("other", {}, key=key))[2]["X-Nimbus-Activation-Id"]

    assert (await api.call("DELETE", f"/v1/activations/{ids[0]}", key=other))[0] == 404
    status, body, _ = await api.call("DELETE", f"/v1/activations/{ids[0]}", key=key)
    assert status == 204, body
    assert (await api.call("GET", f"/v1/activations/{ids[0]}", key=key))[0] == 404
    assert (await api.call("DELETE", f"/v1/activations/{ids[0]}", key=key))[0] == 404

    status, body, _ = await api.call("DELETE", "/v1/activations?function=small", key=key)
    assert status == 400 and body["error"]["field"] == "before"
    status, body, _ = await api.call("DELETE", "/v1/activations?before=yesterday", key=key)
    assert status == 400 and body["error"]["field"] == "before"
    status, body, _ = await api.call("DELETE", "/v1/activations?before=2000-01-01", key=key)
    assert body == {"deleted": 0}  # nothing that old
    future = int(time.time()) + 3600
    status, body, _ = await api.call(
        "DELETE", f"/v1/activations?function=small&before={future}", key=key
    )
    assert (status, body) == (200, {"deleted": 3})
    left = (await api.call("GET", "/v1/activations", key=key))[1]["activations"]
    assert [a["activation_id"] for a in left] == [kept]

    # Every call is still billed: usage records outlive their activations.
    _, bill, _ = await api.call("GET", "/v1/billing?from=2020-01-01", key=key)
    assert bill["total"]["invocations"] == 5


@pytest.mark.platform(activation_retention_days=2 / 86_400, retention_sweep_interval_s=0.2)
async def test_retention_sweeps_old_activations_but_keeps_the_bill(api: Api) -> None:
    key = await api.tenant("forgetful")
    await api.deploy("small", SMALL, key=key)
    old = (await api.invoke("small", {}, key=key))[2]["X-Nimbus-Activation-Id"]
    assert (await api.call("GET", f"/v1/activations/{old}", key=key))[0] == 200
    for _ in range(100):  # the period is 2 s; the sweep runs every 0.2 s
        if (await api.call("GET", f"/v1/activations/{old}", key=key))[0] == 404:
            break
        await asyncio.sleep(0.1)
    assert (await api.call("GET", f"/v1/activations/{old}", key=key))[0] == 404
    _, bill, _ = await api.call("GET", "/v1/billing?from=2020-01-01", key=key)
    assert bill["total"]["invocations"] == 1


async def test_retention_is_seven_days_by_default(platform: Running) -> None:
    assert platform.config.activation_retention_days == 7
