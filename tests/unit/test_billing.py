"""Billing reports: totals, free tiers, days, ranges and tenants, in JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from gateway.billing import build_report, build_reports_by_tenant
from gateway.billing_query import free_tier_window_start
from gateway.pricebook import PriceBook
from invoker.metering import UsageRecord
from tests.unit.billing_records import (
    APRIL_1,
    DAY,
    MARCH_1,
    QUANTUM,
    group_by_st,
    prices_st,
    records_st,
    usage_record,
)


def _billable(records: list[UsageRecord], tenant: str) -> list[UsageRecord]:
    return [
        r
        for r in records
        if r.tenant == tenant and r.status != "platform_error" and MARCH_1 <= r.start < APRIL_1
    ]


@given(records_st, prices_st, group_by_st)
def test_total_is_exactly_the_sum_of_lines(
    records: list[UsageRecord], book: PriceBook, group_by: str
) -> None:
    report = build_report(
        records, book, tenant="acme", group_by=group_by, period_from=MARCH_1, period_to=APRIL_1
    )
    lines = report.lines
    assert report.total.invocations == sum(line.invocations for line in lines)
    assert report.total.billed_gb_seconds == sum(line.billed_gb_seconds for line in lines)
    assert report.total.request_cost == sum(line.request_cost for line in lines)
    assert report.total.compute_cost == sum(line.compute_cost for line in lines)
    assert report.total.total == sum(line.total for line in lines)
    for line in (*lines, report.total):
        assert line.total == line.request_cost + line.compute_cost


@given(records_st, group_by_st)
def test_billed_gb_seconds_is_the_sum_of_billed_ms_times_memory(
    records: list[UsageRecord], group_by: str
) -> None:
    report = build_report(
        records,
        PriceBook(),
        tenant="acme",
        group_by=group_by,
        period_from=MARCH_1,
        period_to=APRIL_1,
    )
    mine = _billable(records, "acme")
    expected = sum((Fraction(r.billed_ms * r.memory_mb, 1024 * 1000) for r in mine), Fraction(0))
    assert Fraction(report.total.billed_gb_seconds) == expected
    assert report.total.invocations == len(mine)


@given(records_st, prices_st, group_by_st)
def test_costs_never_below_the_exact_price_and_within_a_quantum(
    records: list[UsageRecord], book: PriceBook, group_by: str
) -> None:
    report = build_report(
        records, book, tenant="acme", group_by=group_by, period_from=MARCH_1, period_to=APRIL_1
    )
    for line in report.lines:
        exact_requests = (
            (line.invocations - line.free_requests)
            * Fraction(book.price_per_million_requests)
            / 1_000_000
        )
        exact_compute = Fraction(line.billed_gb_seconds - line.free_gb_seconds) * Fraction(
            book.price_per_gb_second
        )
        assert exact_requests <= Fraction(line.request_cost) < exact_requests + QUANTUM
        assert exact_compute <= Fraction(line.compute_cost) < exact_compute + QUANTUM


@given(records_st, prices_st)
def test_free_tier_is_used_up_before_anything_is_charged(
    records: list[UsageRecord], book: PriceBook
) -> None:
    report = build_report(
        records, book, tenant="acme", group_by="function", period_from=MARCH_1, period_to=APRIL_1
    )
    mine = _billable(records, "acme")
    used = sum((r.gb_seconds for r in mine), Decimal(0))
    assert report.total.free_requests == min(book.free_tier_requests, len(mine))
    assert report.total.free_gb_seconds == min(book.free_tier_gb_seconds, used)


@given(records_st, prices_st, group_by_st, st.randoms())
def test_report_does_not_depend_on_record_order(
    records: list[UsageRecord], book: PriceBook, group_by: str, rnd: random.Random
) -> None:
    shuffled = list(records)
    rnd.shuffle(shuffled)
    kwargs = {"tenant": "acme", "group_by": group_by, "period_from": MARCH_1, "period_to": APRIL_1}
    assert build_report(records, book, **kwargs) == build_report(shuffled, book, **kwargs)  # type: ignore[arg-type]


@given(records_st)
def test_one_tenants_report_never_includes_another(records: list[UsageRecord]) -> None:
    reports = build_reports_by_tenant(
        records, PriceBook(), group_by="function", period_from=MARCH_1, period_to=APRIL_1
    )
    for tenant, report in reports.items():
        assert report.tenant == tenant
        assert report.total.invocations == len(_billable(records, tenant))
        for line in report.lines:
            expected = Counter(r.function for r in _billable(records, tenant))
            assert line.invocations == expected[line.key]


@given(records_st)
def test_day_lines_split_at_utc_midnight(records: list[UsageRecord]) -> None:
    report = build_report(
        records, PriceBook(), tenant="acme", group_by="day", period_from=MARCH_1, period_to=APRIL_1
    )
    expected = Counter(
        time.strftime("%Y-%m-%d", time.gmtime(r.start)) for r in _billable(records, "acme")
    )
    assert {line.key: line.invocations for line in report.lines} == dict(expected)


def test_version_lines_bill_each_version_that_ran() -> None:
    v1 = [usage_record(MARCH_1 + k, billed=100) for k in range(3)]
    v2 = [replace(usage_record(MARCH_1 + 10 + k, billed=300), version=2) for k in range(2)]
    report = build_report(
        v1 + v2,
        PriceBook(),
        tenant="acme",
        group_by="version",
        period_from=MARCH_1,
        period_to=APRIL_1,
    )
    lines = {line.key: line for line in report.lines}
    assert set(lines) == {"f:1", "f:2"}
    assert (lines["f:1"].invocations, lines["f:2"].invocations) == (3, 2)
    # Version 2 ran 3x as long per call at the same memory: it costs more GB-s.
    assert lines["f:2"].billed_gb_seconds > lines["f:1"].billed_gb_seconds
    assert report.total.total == sum((line.total for line in report.lines), Decimal(0))


def test_calls_either_side_of_midnight_land_on_different_days() -> None:
    midnight = MARCH_1 + 5 * DAY
    records = [
        usage_record(midnight - 0.001),
        usage_record(midnight),
        usage_record(midnight + 0.001),
    ]
    report = build_report(
        records, PriceBook(), tenant="acme", group_by="day", period_from=MARCH_1, period_to=APRIL_1
    )
    assert [(line.key, line.invocations) for line in report.lines] == [
        ("2024-03-05", 1),
        ("2024-03-06", 2),
    ]


def test_range_is_half_open_and_platform_errors_are_not_billed() -> None:
    records = [
        usage_record(MARCH_1 - 0.001),
        usage_record(MARCH_1),
        usage_record(MARCH_1 + 10, status="platform_error"),
        usage_record(APRIL_1 - 0.001),
        usage_record(APRIL_1),
    ]
    report = build_report(
        records,
        PriceBook(),
        tenant="acme",
        group_by="function",
        period_from=MARCH_1,
        period_to=APRIL_1,
    )
    assert report.total.invocations == 2


def test_free_tier_is_per_calendar_month_and_counts_calls_before_from() -> None:
    book = PriceBook(free_tier_requests=2)
    mid_march = MARCH_1 + 14 * DAY
    march = [
        usage_record(MARCH_1 + i * DAY, activation_id=f"m{i}") for i in range(4)
    ]  # before 15th
    later = [usage_record(mid_march + i, activation_id=f"l{i}") for i in range(3)]
    april = [usage_record(APRIL_1 + i, activation_id=f"a{i}") for i in range(3)]
    everything = march + later + april

    whole = build_report(
        everything,
        book,
        tenant="acme",
        group_by="day",
        period_from=MARCH_1,
        period_to=APRIL_1 + DAY,
    )
    # Two free calls in March and two more in April.
    assert whole.total.free_requests == 4
    assert [line.free_requests for line in whole.lines if line.key.startswith("2024-03")] == [
        1,
        1,
        0,
        0,
        0,
    ]

    # A report from mid-March sees March's allowance already spent by earlier calls.
    assert free_tier_window_start(mid_march) == MARCH_1
    tail = build_report(
        everything,
        book,
        tenant="acme",
        group_by="function",
        period_from=mid_march,
        period_to=APRIL_1,
    )
    assert tail.total.invocations == 3
    assert tail.total.free_requests == 0


def test_csv_parses_and_matches_the_json() -> None:
    records = [
        usage_record(MARCH_1 + 60, billed=1, memory=1, function="tiny"),  # GB-s far below 1e-6
        usage_record(MARCH_1 + 61, billed=123_457, memory=3008, function='odd, "name"'),
        usage_record(MARCH_1 + DAY, billed=5, memory=128, function="resize"),
    ]
    book = PriceBook(free_tier_requests=1)
    for group_by in ("function", "day"):
        report = build_report(
            records, book, tenant="acme", group_by=group_by, period_from=MARCH_1, period_to=APRIL_1
        )
        doc = json.loads(json.dumps(report.to_json()))
        rows = list(csv.DictReader(io.StringIO(report.to_csv())))
        expected = [*doc["lines"], doc["total"]]
        assert len(rows) == len(expected)
        assert rows[-1]["key"] == "TOTAL"
        for row, line in zip(rows, expected, strict=True):
            assert row == {k: str(v) for k, v in line.items()}
        assert "E" not in report.to_csv()  # no scientific notation in a bill


def test_empty_report_has_zero_total() -> None:
    report = build_report(
        [], PriceBook(), tenant="acme", group_by="day", period_from=MARCH_1, period_to=APRIL_1
    )
    assert report.lines == ()
    assert report.to_json()["total"]["total"] == "0.000000"
