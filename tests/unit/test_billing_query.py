"""Billing queries: the from/to range and group_by, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.billing import build_report
from gateway.billing_query import BillingQueryError, parse_group_by, parse_range
from gateway.pricebook import PriceBook
from tests.unit.billing_records import APRIL_1, DAY, MARCH_1

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
