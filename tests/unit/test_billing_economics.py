"""The provider's economics: VM hours and cost, utilisation, revenue and margin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given

from gateway.billing import build_report
from gateway.billing_economics import NodeUsage, economics, provisioned_seconds
from gateway.pricebook import PriceBook
from invoker.metering import UsageRecord
from tests.unit.billing_records import APRIL_1, MARCH_1, prices_st, records_st, usage_record

# --- economics ------------------------------------------------------------------


def test_provisioned_seconds_clips_to_the_range() -> None:
    assert provisioned_seconds(0, None, 100, 200) == 100
    assert provisioned_seconds(150, 170, 100, 200) == 20
    assert provisioned_seconds(50, 120, 100, 200) == 20
    assert provisioned_seconds(300, None, 100, 200) == 0


def test_economics_of_a_small_fleet() -> None:
    hour = 3600.0
    nodes = [
        NodeUsage("n1", "small", hour, Decimal("0.10"), 1024),  # 3600 GB-s provisioned
        NodeUsage("n2", "small", hour / 2, Decimal("0.10"), 1024),
        NodeUsage("idle", "large", 0.0, Decimal("1.00"), 4096),
    ]
    # 360 GB-s on n1: 360 calls of 1 s at 1024 MB; 1 call on a node not listed.
    records = [usage_record(MARCH_1 + i, billed=1000, memory=1024, node="n1") for i in range(360)]
    records.append(usage_record(MARCH_1 + 999, billed=2000, memory=512, node="gone"))
    book = PriceBook()
    out = economics(nodes, records, book, period_from=MARCH_1, period_to=APRIL_1)
    by_node = {n["node_id"]: n for n in out["nodes"]}
    assert by_node["n1"]["utilisation"] == "0.100000"
    assert by_node["n1"]["invocations"] == 360
    assert by_node["n2"]["utilisation"] == "0.000000"
    assert by_node["idle"]["utilisation"] is None
    assert Decimal(out["overall"]["vm_hours"]) == Decimal("1.5")
    assert Decimal(out["overall"]["vm_cost"]) == Decimal("0.15")
    assert Decimal(out["overall"]["unattributed_gb_seconds"]) == 1
    # 360 / (3600 + 1800) provisioned GB-s across the listed nodes.
    assert Decimal(out["overall"]["utilisation"]) == Decimal("0.066667")
    report = build_report(
        records, book, tenant="acme", group_by="function", period_from=MARCH_1, period_to=APRIL_1
    )
    assert Decimal(out["overall"]["revenue"]) == report.total.total
    assert Decimal(out["overall"]["margin"]) == report.total.total - Decimal("0.15")


@given(records_st, prices_st)
def test_economics_adds_up(records: list[UsageRecord], book: PriceBook) -> None:
    nodes = [
        NodeUsage("n1", "small", 7200.0, Decimal("0.0416"), 2048),
        NodeUsage("n2", "large", 1234.5, Decimal("0.1664"), 8192),
    ]
    out = economics(nodes, records, book, period_from=MARCH_1, period_to=APRIL_1)
    overall = out["overall"]
    per_node = sum(Decimal(n["allocated_gb_seconds"]) for n in out["nodes"])
    in_range = [r for r in records if MARCH_1 <= r.start < APRIL_1]
    assert per_node + Decimal(overall["unattributed_gb_seconds"]) == sum(
        (r.gb_seconds for r in in_range), Decimal(0)
    )
    assert Decimal(overall["vm_cost"]) == sum(Decimal(n["vm_cost"]) for n in out["nodes"])
    assert Decimal(overall["revenue"]) == sum(Decimal(v) for v in out["revenue_by_tenant"].values())
    assert Decimal(overall["margin"]) == Decimal(overall["revenue"]) - Decimal(overall["vm_cost"])


def test_economics_refuses_duplicate_nodes() -> None:
    node = NodeUsage("n1", "small", 1.0, Decimal("0.1"), 1024)
    with pytest.raises(ValueError, match="duplicate"):
        economics([node, node], [], PriceBook(), period_from=MARCH_1, period_to=APRIL_1)
