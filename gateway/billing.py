"""Billing: per-tenant reports and the provider's economics, priced by `pricebook`.

Pure Decimal arithmetic over usage records. Policy choices, in one place:

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
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from gateway.pricebook import PriceBook

MONEY_QUANTUM = Decimal("0.000001")
RATIO_QUANTUM = Decimal("0.000001")
GROUP_BY = ("function", "day")
UNBILLED_STATUSES = frozenset({"platform_error"})
CURRENCY = "USD"

_EPOCH_RE = re.compile(r"\d+(\.\d*)?")


class BillingQueryError(ValueError):
    """A bad billing query; `field` is the query parameter at fault ('from', 'to', 'group_by')."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Billable(Protocol):
    """What billing reads from a usage record (`invoker.metering.UsageRecord` fits)."""

    @property
    def tenant(self) -> str: ...
    @property
    def function(self) -> str: ...
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


# --- query parsing ----------------------------------------------------------


def parse_range(
    raw_from: str | float | None, raw_to: str | float | None, *, now: float
) -> tuple[float, float]:
    """Parse a report range into epoch seconds [from, to).

    Each bound is ISO-8601 (a date, or a datetime; naive means UTC) or epoch
    seconds (all digits, optional fraction). A date-only `to` includes that
    whole day. Missing or empty: `to` is `now`, `from` is the start of the UTC
    month that `to` falls in. Raises BillingQueryError naming the field.
    """
    end = now if _blank(raw_to) else _instant(raw_to, "to", end_of_day=True)
    if _blank(raw_from):
        start = _month_start(end)
        if start == end:  # `to` is a month boundary: report the month before it
            start = _month_start(end - 1)
    else:
        start = _instant(raw_from, "from", end_of_day=False)
    if start > end:
        raise BillingQueryError("from", f"{_iso(start)} is after to ({_iso(end)})")
    return start, end


def parse_group_by(raw: str | None) -> str:
    """'function' (the default) or 'day'; anything else raises BillingQueryError('group_by')."""
    if raw is None or raw == "":
        return "function"
    if raw not in GROUP_BY:
        raise BillingQueryError("group_by", f"must be one of {', '.join(GROUP_BY)}, got {raw!r}")
    return raw


def free_tier_window_start(period_from: float) -> float:
    """Where records for a report from `period_from` must start so the free tier is right."""
    return _month_start(period_from)


def _blank(value: str | float | None) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _instant(raw: str | float | None, name: str, *, end_of_day: bool) -> float:
    if isinstance(raw, bool):
        raise BillingQueryError(name, f"not a time: {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        text = str(raw).strip()
        try:
            if _EPOCH_RE.fullmatch(text):
                value = float(text)
            else:
                try:
                    day = date.fromisoformat(text)
                except ValueError:
                    moment = datetime.fromisoformat(text)
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=UTC)
                    value = moment.timestamp()
                else:
                    if end_of_day:
                        day += timedelta(days=1)
                    value = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        except (ValueError, OverflowError):
            raise BillingQueryError(
                name, f"not an ISO-8601 date/datetime or epoch seconds: {text!r}"
            ) from None
    if not math.isfinite(value) or value < 0:
        raise BillingQueryError(name, f"must be a time at or after 1970-01-01, got {raw!r}")
    try:
        _utc(value)
    except (ValueError, OverflowError, OSError):
        raise BillingQueryError(name, f"out of range: {raw!r}") from None
    return value


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _iso(ts: float) -> str:
    return _utc(ts).isoformat().replace("+00:00", "Z")


def _month_start(ts: float) -> float:
    moment = _utc(ts)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp()


# --- reports ----------------------------------------------------------------


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
            "billed_gb_seconds": _s(self.billed_gb_seconds),
            "free_requests": self.free_requests,
            "free_gb_seconds": _s(self.free_gb_seconds),
            "request_cost": _s(self.request_cost),
            "compute_cost": _s(self.compute_cost),
            "total": _s(self.total),
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
            "from": _iso(self.period_from),
            "to": _iso(self.period_to),
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
        raise BillingQueryError("from", f"{_iso(period_from)} is after to ({_iso(period_to)})")
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
    with decimal.localcontext(_context()):
        for r in mine:
            gbs = _gb_seconds(r.billed_ms, r.memory_mb)
            moment = _utc(r.start)
            month = (moment.year, moment.month)
            req_left, gbs_left = allowance.get(
                month, (prices.free_tier_requests, prices.free_tier_gb_seconds)
            )
            free_req = 1 if req_left > 0 else 0
            free_gbs = min(gbs, gbs_left)
            allowance[month] = (req_left - free_req, gbs_left - free_gbs)
            if r.start < period_from:
                continue  # only consumed this month's allowance
            key = r.function if group_by == "function" else moment.date().isoformat()
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
    request_cost = _money(
        (acc.invocations - acc.free_requests) * prices.price_per_million_requests / 1_000_000
    )
    compute_cost = _money((acc.gb_seconds - acc.free_gb_seconds) * prices.price_per_gb_second)
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


def _context() -> decimal.Context:
    # Wide enough that sums and products of prices and GB-s are exact; the one
    # inexact step (dividing by 3600 s/h) rounds up, like all money here.
    return decimal.Context(
        prec=80, rounding=decimal.ROUND_CEILING, traps=[decimal.InvalidOperation]
    )


def _gb_seconds(billed_ms: int, memory_mb: int) -> Decimal:
    return Decimal(billed_ms * memory_mb) / Decimal(1024 * 1000)


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(MONEY_QUANTUM, rounding=decimal.ROUND_CEILING)


def _ratio(amount: Decimal) -> Decimal:
    return amount.quantize(RATIO_QUANTUM, rounding=decimal.ROUND_HALF_EVEN)


def _s(value: Decimal) -> str:
    return format(value, "f")


# --- the provider's economics -----------------------------------------------


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
        raise BillingQueryError("from", f"{_iso(period_from)} is after to ({_iso(period_to)})")
    ids = [n.node_id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError("economics: duplicate node_id in nodes")
    recs = list(records)
    reports = build_reports_by_tenant(
        recs, price_book, group_by="function", period_from=period_from, period_to=period_to
    )
    with decimal.localcontext(_context()):
        revenue_by_tenant = {t: rep.total.total for t, rep in reports.items()}
        revenue = sum(revenue_by_tenant.values(), Decimal("0.000000"))
        allocated: dict[str | None, Decimal] = {}
        calls: dict[str | None, int] = {}
        for r in recs:
            if period_from <= r.start < period_to:
                allocated[r.node] = allocated.get(r.node, Decimal(0)) + _gb_seconds(
                    r.billed_ms, r.memory_mb
                )
                calls[r.node] = calls.get(r.node, 0) + 1
        per_node: list[dict[str, Any]] = []
        vm_cost = Decimal("0.000000")
        hours = provisioned = used = Decimal(0)
        for n in nodes:
            seconds = Decimal(repr(float(n.provisioned_s)))
            n_hours = seconds / 3600
            n_cost = _money(seconds * n.price_per_hour / 3600)
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
                    "vm_hours": _s(_ratio(n_hours)),
                    "vm_cost": _s(n_cost),
                    "invocations": calls.get(n.node_id, 0),
                    "provisioned_gb_seconds": _s(_ratio(n_prov)),
                    "allocated_gb_seconds": _s(n_used),
                    "utilisation": _s(_ratio(n_used / n_prov)) if n_prov > 0 else None,
                }
            )
        known = set(ids)
        unattributed = sum((v for k, v in allocated.items() if k not in known), Decimal(0))
        overall = {
            "vm_hours": _s(_ratio(hours)),
            "vm_cost": _s(vm_cost),
            "revenue": _s(revenue),
            "margin": _s(revenue - vm_cost),
            "provisioned_gb_seconds": _s(_ratio(provisioned)),
            "allocated_gb_seconds": _s(used),
            "unattributed_gb_seconds": _s(unattributed),
            "utilisation": _s(_ratio(used / provisioned)) if provisioned > 0 else None,
        }
    return {
        "from": _iso(period_from),
        "to": _iso(period_to),
        "currency": CURRENCY,
        "nodes": per_node,
        "overall": overall,
        "revenue_by_tenant": {t: _s(v) for t, v in revenue_by_tenant.items()},
    }
