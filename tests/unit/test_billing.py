"""Billing reports, price books, query ranges and the provider's economics."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.billing import MONEY_QUANTUM, build_report, build_reports_by_tenant
from gateway.billing_economics import NodeUsage, economics, provisioned_seconds
from gateway.billing_query import (
    BillingQueryError,
    free_tier_window_start,
    parse_group_by,
    parse_range,
)
from gateway.pricebook import PriceBook, PriceBookError, load_price_book, parse_price_book
from invoker.metering import UsageRecord, gb_seconds

MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
APRIL_1 = datetime(2024, 4, 1, tzinfo=UTC).timestamp()
DAY = 86_400.0
QUANTUM = Fraction(MONEY_QUANTUM)


def _record(
    start: float,
    billed: int = 100,
    memory: int = 128,
    tenant: str = "acme",
    function: str = "f",
    node: str | None = "n1",
    status: str = "success",
    activation_id: str | None = None,
) -> UsageRecord:
    return UsageRecord(
        tenant=tenant,
        function=function,
        version=1,
        activation_id=activation_id or f"{tenant}-{function}-{start}-{billed}",
        node=node,
        start=start,
        end=start + billed / 1000,
        duration_ms=float(billed),
        billed_ms=billed,
        memory_mb=memory,
        gb_seconds=gb_seconds(billed, memory),
        peak_memory_mb=None,
        cpu_seconds=None,
        cold_start=False,
        init_ms=0.0,
        wait_ms=0.0,
        status=status,
    )


records_st = st.lists(
    st.builds(
        _record,
        start=st.floats(min_value=MARCH_1, max_value=APRIL_1 - 0.001),
        billed=st.integers(min_value=1, max_value=900_000),
        memory=st.sampled_from([128, 256, 512, 1024, 3008, 4096]),
        tenant=st.sampled_from(["acme", "globex"]),
        function=st.sampled_from(["resize", "thumb", "hello"]),
        node=st.sampled_from(["n1", "n2", None]),
        status=st.sampled_from(["success", "application_error", "timeout", "platform_error"]),
        activation_id=st.uuids().map(str),
    ),
    max_size=60,
)
prices_st = st.builds(
    PriceBook,
    price_per_million_requests=st.decimals(min_value=0, max_value=5, places=4),
    price_per_gb_second=st.decimals(min_value=0, max_value=Decimal("0.001"), places=10),
    free_tier_requests=st.integers(min_value=0, max_value=20),
    free_tier_gb_seconds=st.decimals(min_value=0, max_value=500, places=3),
)
group_by_st = st.sampled_from(["function", "day"])


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


def test_calls_either_side_of_midnight_land_on_different_days() -> None:
    midnight = MARCH_1 + 5 * DAY
    records = [_record(midnight - 0.001), _record(midnight), _record(midnight + 0.001)]
    report = build_report(
        records, PriceBook(), tenant="acme", group_by="day", period_from=MARCH_1, period_to=APRIL_1
    )
    assert [(line.key, line.invocations) for line in report.lines] == [
        ("2024-03-05", 1),
        ("2024-03-06", 2),
    ]


def test_range_is_half_open_and_platform_errors_are_not_billed() -> None:
    records = [
        _record(MARCH_1 - 0.001),
        _record(MARCH_1),
        _record(MARCH_1 + 10, status="platform_error"),
        _record(APRIL_1 - 0.001),
        _record(APRIL_1),
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
    march = [_record(MARCH_1 + i * DAY, activation_id=f"m{i}") for i in range(4)]  # before 15th
    later = [_record(mid_march + i, activation_id=f"l{i}") for i in range(3)]
    april = [_record(APRIL_1 + i, activation_id=f"a{i}") for i in range(3)]
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
        _record(MARCH_1 + 60, billed=1, memory=1, function="tiny"),  # GB-s far below 1e-6
        _record(MARCH_1 + 61, billed=123_457, memory=3008, function='odd, "name"'),
        _record(MARCH_1 + DAY, billed=5, memory=128, function="resize"),
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


# --- price book ---------------------------------------------------------------

BOOK_TOML = """
price_per_million_requests = 0.25
price_per_gb_second = 0.0000166667
free_tier_requests = 1000

[flavors]
"m5.large" = "0.096"

[tenants.acme]
price_per_gb_second = "0.00001"

[tenants.globex]
free_tier_requests = 0
"""


def test_tenant_override_replaces_only_what_it_names() -> None:
    book = parse_price_book(BOOK_TOML, "toml")
    acme = book.for_tenant("acme")
    assert acme.price_per_gb_second == Decimal("0.00001")
    assert acme.price_per_million_requests == Decimal("0.25")  # inherited
    assert acme.free_tier_requests == 1000
    assert book.for_tenant("globex").free_tier_requests == 0
    assert book.for_tenant("initech") is book
    assert book.flavors == {"m5.large": Decimal("0.096")}
    # Floats in the file are read as the decimals written, not binary approximations.
    assert book.price_per_gb_second == Decimal("0.0000166667")


def test_reports_use_the_tenants_prices() -> None:
    book = PriceBook(tenants={"acme": replace(PriceBook(), price_per_gb_second=Decimal("0.001"))})
    records = [_record(MARCH_1 + 1, billed=1000, memory=1024, tenant=t) for t in ("acme", "globex")]
    kwargs = {"group_by": "function", "period_from": MARCH_1, "period_to": APRIL_1}
    acme = build_report(records, book, tenant="acme", **kwargs)  # type: ignore[arg-type]
    globex = build_report(records, book, tenant="globex", **kwargs)  # type: ignore[arg-type]
    assert acme.total.compute_cost == Decimal("0.001")  # 1 GB-s at the override
    assert globex.total.compute_cost == Decimal("0.000017")  # 1 GB-s at list price, rounded up


def test_price_book_files_load_in_both_formats(tmp_path: Path) -> None:
    toml_path = tmp_path / "prices.toml"
    toml_path.write_text(BOOK_TOML)
    json_path = tmp_path / "prices.json"
    json_path.write_text(
        json.dumps(
            {
                "price_per_million_requests": 0.25,
                "price_per_gb_second": 0.0000166667,
                "free_tier_requests": 1000,
                "flavors": {"m5.large": "0.096"},
                "tenants": {
                    "acme": {"price_per_gb_second": "0.00001"},
                    "globex": {"free_tier_requests": 0},
                },
            }
        )
    )
    assert load_price_book(toml_path) == load_price_book(json_path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("price_per_gb_secnd = 1", "price_per_gb_secnd: unknown key"),
        ("price_per_gb_second = -1", "price_per_gb_second: must be a finite number >= 0"),
        ('price_per_gb_second = "cheap"', "price_per_gb_second: not a number"),
        ("free_tier_requests = 1.5", "free_tier_requests: expected a whole number"),
        ("[tenants.acme]\nflavors = 1", "tenants.acme.flavors: unknown key"),
        ("[tenants.acme]\nprice_per_million_requests = nan", "tenants.acme.price_per_million"),
        ("[flavors]\nsmall = true", "flavors.small: expected a number"),
        ("price_per_gb_second = ", "not valid toml"),
    ],
)
def test_bad_price_books_name_the_key(text: str, fragment: str) -> None:
    with pytest.raises(PriceBookError, match=r"prices\.toml") as info:
        parse_price_book(text, "toml", source="prices.toml")
    assert fragment in str(info.value)


def test_unreadable_or_unknown_price_book_files(tmp_path: Path) -> None:
    with pytest.raises(PriceBookError, match="cannot read"):
        load_price_book(tmp_path / "missing.toml")
    with pytest.raises(PriceBookError, match="unknown price book format"):
        load_price_book(tmp_path / "prices.yaml")


# --- query parsing --------------------------------------------------------------


def test_range_accepts_dates_datetimes_and_epoch_seconds() -> None:
    # A date-only `to` includes that whole day.
    assert parse_range("2024-03-01", "2024-03-31", now=0) == (MARCH_1, APRIL_1)
    assert parse_range("2024-03-01T00:00:00Z", "2024-04-01T00:00:00+00:00", now=0) == (
        MARCH_1,
        APRIL_1,
    )
    assert parse_range("2024-03-01T02:00:00+02:00", "2024-04-01T00:00:00", now=0) == (
        MARCH_1,
        APRIL_1,
    )  # an offset is honoured, a naive time is UTC
    assert parse_range(str(int(MARCH_1)), f"{APRIL_1}", now=0) == (MARCH_1, APRIL_1)
    assert parse_range(MARCH_1, APRIL_1, now=0) == (MARCH_1, APRIL_1)


def test_range_defaults_to_the_month_so_far() -> None:
    now = MARCH_1 + 10 * DAY + 5
    assert parse_range(None, "", now=now) == (MARCH_1, now)
    # At a month boundary the default is the month that just ended.
    assert parse_range(None, None, now=APRIL_1) == (MARCH_1, APRIL_1)


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "field"),
    [
        ("yesterday", "2024-03-01", "from"),
        ("2024-03-01", "2024-13-01", "to"),
        ("2024-03-01", "-5", "to"),
        ("2024-03-02", "2024-03-01T12:00:00Z", "from"),
        ("1e9", None, "from"),
        ("2024-03-01", "9999-12-31", "to"),
    ],
)
def test_bad_ranges_name_the_field(raw_from: str, raw_to: str | None, field: str) -> None:
    with pytest.raises(BillingQueryError) as info:
        parse_range(raw_from, raw_to, now=APRIL_1)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


@given(st.floats(min_value=0, max_value=4e9), st.floats(min_value=0, max_value=4e9))
def test_from_after_to_is_always_refused(a: float, b: float) -> None:
    assume(a != b)
    low, high = sorted((a, b))
    assert parse_range(low, high, now=0) == (low, high)
    with pytest.raises(BillingQueryError) as info:
        parse_range(high, low, now=0)
    assert info.value.field == "from"


def test_group_by_is_validated() -> None:
    assert parse_group_by(None) == "function"
    assert parse_group_by("day") == "day"
    with pytest.raises(BillingQueryError) as info:
        parse_group_by("week")
    assert info.value.field == "group_by"
    with pytest.raises(BillingQueryError) as info:
        build_report([], PriceBook(), tenant="a", group_by="hour", period_from=0, period_to=1)
    assert info.value.field == "group_by"


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
    records = [_record(MARCH_1 + i, billed=1000, memory=1024, node="n1") for i in range(360)]
    records.append(_record(MARCH_1 + 999, billed=2000, memory=512, node="gone"))
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
