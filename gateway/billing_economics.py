"""The provider's economics: VM-hours and their cost against billed revenue (pure).

Revenue is what `billing` bills each tenant, under the same rounding rules.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.billing import (
    CURRENCY,
    Billable,
    build_reports_by_tenant,
    decimal_text,
    exact_gb_seconds,
    money_context,
    round_money,
    round_ratio,
)
from gateway.billing_query import BillingQueryError, iso_utc
from gateway.pricebook import PriceBook


@dataclass(frozen=True)
class NodeUsage:
    """One node (VM) as provisioned within the range under study."""

    node_id: str
    flavor: str
    provisioned_s: float  # seconds the node was up within [from, to)
    price_per_hour: Decimal  # USD
    capacity_memory_mb: int


def provisioned_seconds(
    up_at: float, down_at: float | None, period_from: float, period_to: float
) -> float:
    """Seconds of [up_at, down_at) inside [period_from, period_to); None means still up."""
    end = period_to if down_at is None else min(down_at, period_to)
    return max(0.0, end - max(up_at, period_from))


def economics(
    nodes: Sequence[NodeUsage],
    records: Iterable[Billable],
    price_book: PriceBook,
    *,
    period_from: float,
    period_to: float,
) -> dict[str, Any]:
    """VM-hours and their cost, billed revenue, margin and utilisation, per node and overall.

    Utilisation is allocated GB-s (billed_ms x memory of calls that started on
    the node in range, billed or not) over provisioned GB-s (uptime x memory
    capacity); idle warm containers count as unused. Revenue is the sum of each
    tenant's report total under its own prices. JSON-ready: Decimals as strings,
    utilisation None for a node with no provisioned time.
    """
    if period_from > period_to:
        raise BillingQueryError(
            "from", f"{iso_utc(period_from)} is after to ({iso_utc(period_to)})"
        )
    ids = [n.node_id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError("economics: duplicate node_id in nodes")
    recs = list(records)
    reports = build_reports_by_tenant(
        recs, price_book, group_by="function", period_from=period_from, period_to=period_to
    )
    with decimal.localcontext(money_context()):
        revenue_by_tenant = {t: rep.total.total for t, rep in reports.items()}
        revenue = sum(revenue_by_tenant.values(), Decimal("0.000000"))
        allocated: dict[str | None, Decimal] = {}
        calls: dict[str | None, int] = {}
        for r in recs:
            if period_from <= r.start < period_to:
                allocated[r.node] = allocated.get(r.node, Decimal(0)) + exact_gb_seconds(
                    r.billed_ms, r.memory_mb
                )
                calls[r.node] = calls.get(r.node, 0) + 1
        per_node: list[dict[str, Any]] = []
        vm_cost = Decimal("0.000000")
        hours = provisioned = used = Decimal(0)
        for n in nodes:
            seconds = Decimal(repr(float(n.provisioned_s)))
            n_hours = seconds / 3600
            n_cost = round_money(seconds * n.price_per_hour / 3600)
            n_prov = seconds * n.capacity_memory_mb / 1024
            n_used = allocated.get(n.node_id, Decimal(0))
            hours += n_hours
            vm_cost += n_cost
            provisioned += n_prov
            used += n_used
            per_node.append(
                {
                    "node_id": n.node_id,
                    "flavor": n.flavor,
                    "vm_hours": decimal_text(round_ratio(n_hours)),
                    "vm_cost": decimal_text(n_cost),
                    "invocations": calls.get(n.node_id, 0),
                    "provisioned_gb_seconds": decimal_text(round_ratio(n_prov)),
                    "allocated_gb_seconds": decimal_text(n_used),
                    "utilisation": decimal_text(round_ratio(n_used / n_prov))
                    if n_prov > 0
                    else None,
                }
            )
        known = set(ids)
        unattributed = sum((v for k, v in allocated.items() if k not in known), Decimal(0))
        overall = {
            "vm_hours": decimal_text(round_ratio(hours)),
            "vm_cost": decimal_text(vm_cost),
            "revenue": decimal_text(revenue),
            "margin": decimal_text(revenue - vm_cost),
            "provisioned_gb_seconds": decimal_text(round_ratio(provisioned)),
            "allocated_gb_seconds": decimal_text(used),
            "unattributed_gb_seconds": decimal_text(unattributed),
            "utilisation": decimal_text(round_ratio(used / provisioned))
            if provisioned > 0
            else None,
        }
    return {
        "from": iso_utc(period_from),
        "to": iso_utc(period_to),
        "currency": CURRENCY,
        "nodes": per_node,
        "overall": overall,
        "revenue_by_tenant": {t: decimal_text(v) for t, v in revenue_by_tenant.items()},
    }
