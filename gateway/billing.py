"""Billing: per-tenant reports, priced by `pricebook`, and the rounding rules they share.

Pure Decimal arithmetic over usage records; `billing_query` parses the range
and grouping asked for, `billing_economics` sets the bills against VM costs.
Policy choices, in one place:

- Report ranges are half-open, [from, to), on each record's start time; days
  are UTC days.
- GB-seconds are exact (billed_ms * memory_mb / 1024 / 1000 terminates), so a
  report's GB-s are exactly the sum of its records'.
- Money is rounded per line, per cost component, UP to MONEY_QUANTUM (1e-6 USD):
  a line never costs less than its exact price and at most one quantum more
  per component. Totals are sums of the rounded lines, so they match exactly.
  Because rounding is per line, grouping by day and by function can differ by
  a few quanta.
- The free tier is an allowance per tenant per UTC calendar month (like the
  public clouds'), consumed by calls in start order (ties by activation id).
  To know how much of a month's allowance calls before `from` used, pass
  records from `free_tier_window_start(from)` on; records before `from` only
  consume allowance and never appear in lines. Records missing from that
  window make the free tier look larger than it is.
- Calls that ended in `platform_error` are metered but not billed: the
  platform failed, not the caller's code.
"""

from __future__ import annotations

import csv
import decimal
import io
from collections.abc import Iterable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Protocol

from gateway.billing_query import (
    BillingQueryError,
    free_tier_window_start,
    iso_utc,
    parse_group_by,
    utc_datetime,
)
from gateway.pricebook import PriceBook

MONEY_QUANTUM = Decimal("0.000001")
RATIO_QUANTUM = Decimal("0.000001")
UNBILLED_STATUSES = frozenset({"platform_error"})
CURRENCY = "USD"


class Billable(Protocol):
    """What billing reads from a usage record (`invoker.metering.UsageRecord` fits)."""

    @property
    def tenant(self) -> str: ...
    @property
    def function(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def activation_id(self) -> str: ...
    @property
    def node(self) -> str | None: ...
    @property
    def start(self) -> float: ...
    @property
    def billed_ms(self) -> int: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class ReportLine:
    """One group of a report. Costs are USD, already rounded up to MONEY_QUANTUM."""

    key: str
    invocations: int
    billed_gb_seconds: Decimal
    free_requests: int
    free_gb_seconds: Decimal
    request_cost: Decimal
    compute_cost: Decimal
    total: Decimal

    def to_json(self) -> dict[str, Any]:
        """Counts as numbers, Decimals as strings so no digit is lost."""
        return {
            "key": self.key,
            "invocations": self.invocations,
            "billed_gb_seconds": decimal_text(self.billed_gb_seconds),
            "free_requests": self.free_requests,
            "free_gb_seconds": decimal_text(self.free_gb_seconds),
            "request_cost": decimal_text(self.request_cost),
            "compute_cost": decimal_text(self.compute_cost),
            "total": decimal_text(self.total),
        }


CSV_COLUMNS = tuple(f.name for f in fields(ReportLine))


@dataclass(frozen=True)
class Report:
    """A tenant's bill over [period_from, period_to); `total` is the exact sum of `lines`."""

    tenant: str
    group_by: str
    period_from: float
    period_to: float
    lines: tuple[ReportLine, ...]
    total: ReportLine  # key "TOTAL"
    currency: str = CURRENCY

    def to_json(self) -> dict[str, Any]:
        """The report as the HTTP API returns it."""
        return {
            "tenant": self.tenant,
            "group_by": self.group_by,
            "from": iso_utc(self.period_from),
            "to": iso_utc(self.period_to),
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "total": self.total.to_json(),
        }

    def to_csv(self) -> str:
        """A header, one row per line, then the TOTAL row; same values as `to_json`."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for line in (*self.lines, self.total):
            row = line.to_json()
            writer.writerow([row[c] for c in CSV_COLUMNS])
        return out.getvalue()


@dataclass
class _Acc:
    invocations: int = 0
    gb_seconds: Decimal = Decimal(0)
    free_requests: int = 0
    free_gb_seconds: Decimal = Decimal(0)


def build_report(
    records: Iterable[Billable],
    price_book: PriceBook,
    *,
    tenant: str,
    group_by: str,
    period_from: float,
    period_to: float,
) -> Report:
    """`tenant`'s bill over [period_from, period_to), one line per function or UTC day.

    Records of other tenants are ignored, so a mixed list is safe to pass.
    See the module docstring for rounding and free-tier rules.
    """
    group_by = parse_group_by(group_by)
    if period_from > period_to:
        raise BillingQueryError(
            "from", f"{iso_utc(period_from)} is after to ({iso_utc(period_to)})"
        )
    prices = price_book.for_tenant(tenant)
    window = free_tier_window_start(period_from)
    mine = sorted(
        (
            r
            for r in records
            if r.tenant == tenant
            and r.status not in UNBILLED_STATUSES
            and window <= r.start < period_to
        ),
        key=lambda r: (r.start, r.activation_id),
    )
    groups: dict[str, _Acc] = {}
    allowance: dict[tuple[int, int], tuple[int, Decimal]] = {}
    with decimal.localcontext(money_context()):
        for r in mine:
            gbs = exact_gb_seconds(r.billed_ms, r.memory_mb)
            moment = utc_datetime(r.start)
            month = (moment.year, moment.month)
            req_left, gbs_left = allowance.get(
                month, (prices.free_tier_requests, prices.free_tier_gb_seconds)
            )
            free_req = 1 if req_left > 0 else 0
            free_gbs = min(gbs, gbs_left)
            allowance[month] = (req_left - free_req, gbs_left - free_gbs)
            if r.start < period_from:
                continue  # only consumed this month's allowance
            key = {"function": r.function, "version": f"{r.function}:{r.version}"}.get(
                group_by, moment.date().isoformat()
            )
            acc = groups.setdefault(key, _Acc())
            acc.invocations += 1
            acc.gb_seconds += gbs
            acc.free_requests += free_req
            acc.free_gb_seconds += free_gbs
        lines = tuple(_line(key, groups[key], prices) for key in sorted(groups))
        total = ReportLine(
            key="TOTAL",
            invocations=sum(line.invocations for line in lines),
            billed_gb_seconds=sum((line.billed_gb_seconds for line in lines), Decimal(0)),
            free_requests=sum(line.free_requests for line in lines),
            free_gb_seconds=sum((line.free_gb_seconds for line in lines), Decimal(0)),
            request_cost=sum((line.request_cost for line in lines), Decimal("0.000000")),
            compute_cost=sum((line.compute_cost for line in lines), Decimal("0.000000")),
            total=sum((line.total for line in lines), Decimal("0.000000")),
        )
    return Report(tenant, group_by, period_from, period_to, lines, total)


def build_reports_by_tenant(
    records: Iterable[Billable],
    price_book: PriceBook,
    *,
    group_by: str,
    period_from: float,
    period_to: float,
) -> dict[str, Report]:
    """One report per tenant that has records (the admin view), keyed by tenant, sorted."""
    recs = list(records)
    return {
        t: build_report(
            recs,
            price_book,
            tenant=t,
            group_by=group_by,
            period_from=period_from,
            period_to=period_to,
        )
        for t in sorted({r.tenant for r in recs})
    }


def _line(key: str, acc: _Acc, prices: PriceBook) -> ReportLine:
    request_cost = round_money(
        (acc.invocations - acc.free_requests) * prices.price_per_million_requests / 1_000_000
    )
    compute_cost = round_money((acc.gb_seconds - acc.free_gb_seconds) * prices.price_per_gb_second)
    return ReportLine(
        key=key,
        invocations=acc.invocations,
        billed_gb_seconds=acc.gb_seconds,
        free_requests=acc.free_requests,
        free_gb_seconds=acc.free_gb_seconds,
        request_cost=request_cost,
        compute_cost=compute_cost,
        total=request_cost + compute_cost,
    )


def money_context() -> decimal.Context:
    """The Decimal context all billing arithmetic runs in."""
    # Wide enough that sums and products of prices and GB-s are exact; the one
    # inexact step (dividing by 3600 s/h) rounds up, like all money here.
    return decimal.Context(
        prec=80, rounding=decimal.ROUND_CEILING, traps=[decimal.InvalidOperation]
    )


def exact_gb_seconds(billed_ms: int, memory_mb: int) -> Decimal:
    """billed_ms x memory_mb as GB-seconds (exact: the division terminates)."""
    return Decimal(billed_ms * memory_mb) / Decimal(1024 * 1000)


def round_money(amount: Decimal) -> Decimal:
    """USD rounded up to MONEY_QUANTUM: never less than the exact price."""
    return amount.quantize(MONEY_QUANTUM, rounding=decimal.ROUND_CEILING)


def round_ratio(amount: Decimal) -> Decimal:
    """A non-money figure (hours, GB-s, utilisation) to RATIO_QUANTUM, half-even."""
    return amount.quantize(RATIO_QUANTUM, rounding=decimal.ROUND_HALF_EVEN)


def decimal_text(value: Decimal) -> str:
    """A Decimal as JSON carries it: a plain-notation string, no digit lost."""
    return format(value, "f")
