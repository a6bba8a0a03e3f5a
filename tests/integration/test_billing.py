"""Metering, billing reports and Prometheus metrics after real invocations."""

from __future__ import annotations

import csv
import io
import math
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api, Running

ECHO = "def handler(e):\n    return e\n"


def expected_gb_s(activations: list[dict]) -> Decimal:
    return sum(
        (Decimal(math.ceil(a["duration_ms"])) * a["memory_mb"] / 1024 / 1000 for a in activations),
        Decimal(0),
    )


async def test_report_matches_activations_exactly(api: Api) -> None:
    await api.deploy("small", ECHO, memory_mb=128)
    await api.deploy("big", ECHO, memory_mb=512)
    for _ in range(5):
        assert (await api.invoke("small"))[0] == 200
    for _ in range(3):
        assert (await api.invoke("big"))[0] == 200
    status, acts, _ = await api.call("GET", "/v1/activations?limit=100")
    by_fn: dict[str, list[dict]] = {}
    for a in acts["activations"]:
        by_fn.setdefault(a["function"], []).append(a)

    status, report, _ = await api.call("GET", "/v1/billing?group_by=function")
    assert status == 200, report
    lines = {line["key"]: line for line in report["lines"]}
    assert lines["small"]["invocations"] == 5 and lines["big"]["invocations"] == 3
    for name in ("small", "big"):
        assert Decimal(lines[name]["billed_gb_seconds"]) == expected_gb_s(by_fn[name])
    for column in ("invocations", "billed_gb_seconds", "request_cost", "compute_cost", "total"):
        total = sum(Decimal(str(line[column])) for line in report["lines"])
        assert total == Decimal(str(report["total"][column])), column

    async with api.session.get(
        api.url + "/v1/billing?group_by=day", headers={**api.headers(), "Accept": "text/csv"}
    ) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert rows[-1]["key"] == "TOTAL" and int(rows[-1]["invocations"]) == 8
    assert sum(int(r["invocations"]) for r in rows[:-1]) == 8


async def test_tenants_only_see_their_own_bill(api: Api) -> None:
    key_a, key_b = await api.tenant("payer-a"), await api.tenant("payer-b")
    await api.deploy("f", ECHO, key=key_a)
    await api.deploy("g", ECHO, key=key_b)
    for _ in range(2):
        await api.invoke("f", key=key_a)
    await api.invoke("g", key=key_b)
    _, report_a, _ = await api.call("GET", "/v1/billing", key=key_a)
    assert [line["key"] for line in report_a["lines"]] == ["f"]
    assert report_a["total"]["invocations"] == 2
    _, report_b, _ = await api.call("GET", "/v1/billing", key=key_b)
    assert [line["key"] for line in report_b["lines"]] == ["g"]
    assert (await api.call("GET", "/v1/admin/billing", key=key_a))[0] == 403
    status, everyone, _ = await api.call("GET", "/v1/admin/billing")
    assert status == 200 and {"payer-a", "payer-b"} <= set(everyone["tenants"])


async def test_bad_billing_queries(api: Api) -> None:
    for query, field in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("group_by=week", "group_by"),
    ]:
        status, body, _ = await api.call("GET", f"/v1/billing?{query}")
        assert status == 400 and body["error"]["field"] == field, (query, body)


async def test_peak_memory_and_cpu_are_measured(api: Api) -> None:
    source = (
        "def handler(e):\n"
        "    hog = bytearray(e['mb'] * 2**20)\n"
        "    hog[::4096] = b'x' * len(hog[::4096])\n"
        "    return len(hog)\n"
    )
    await api.deploy("alloc", source, memory_mb=256)
    await api.invoke("alloc", {"mb": 1})  # cold start out of the way
    status, _, headers = await api.invoke("alloc", {"mb": 50})
    assert status == 200
    _, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert act["peak_memory_mb"] is not None and act["peak_memory_mb"] > 50
    assert act["cpu_seconds"] is not None and act["cpu_seconds"] >= 0
    status, _, headers = await api.invoke("alloc", {"mb": 1})
    _, small, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert small["peak_memory_mb"] < act["peak_memory_mb"]


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_metrics_move_by_exactly_n(platform: Running) -> None:
    api = platform.api
    await api.deploy("counted", ECHO)
    await api.deploy("failing", "def handler(e):\n    raise RuntimeError('no')\n")
    await api.invoke("counted")
    async with api.session.get(api.url + "/metrics", headers=api.headers()) as resp:
        assert resp.status == 200
        before = scrape(await resp.text())
    for _ in range(7):
        await api.invoke("counted")
    for _ in range(2):
        await api.invoke("failing")
    async with api.session.get(api.url + "/metrics", headers=api.headers()) as resp:
        after = scrape(await resp.text())
    ok = (
        "nimbus_invocations_total",
        (("function", "counted"), ("status", "success"), ("tenant", "admin")),
    )
    bad = (
        "nimbus_invocations_total",
        (("function", "failing"), ("status", "application_error"), ("tenant", "admin")),
    )
    assert after[ok] - before[ok] == 7
    assert after[bad] - before.get(bad, 0) == 2
    cold = ("nimbus_cold_starts_total", (("function", "failing"), ("tenant", "admin")))
    assert after[cold] == 1
    assert after[("nimbus_containers", (("state", "idle"),))] == 2
    route = [
        k
        for k in after
        if k[0] == "nimbus_http_request_duration_seconds_count"
        and ("route", "/v1/functions/{name}/invoke") in k[1]
    ]
    assert route
    # Tenants cannot read the platform's metrics.
    key = await api.tenant("nosy")
    async with api.session.get(api.url + "/metrics", headers=api.headers(key)) as resp:
        assert resp.status == 403


async def test_economics_for_admin(api: Api) -> None:
    await api.deploy("e", ECHO)
    await api.invoke("e")
    status, body, _ = await api.call("GET", "/v1/admin/economics")
    assert status == 200, body
    assert body["nodes"] and body["nodes"][0]["invocations"] == 1
    assert Decimal(body["overall"]["revenue"]) > 0
