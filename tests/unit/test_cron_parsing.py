"""Cron schedules: what each field and macro parses to, and bad expressions named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.cron import CronError, CronSchedule
from tests.unit.cron_times import fires

# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("expr", "field", "expected"),
    [
        ("*/15 * * * *", "minutes", set(range(0, 60, 15))),
        ("0-30/10 * * * *", "minutes", {0, 10, 20, 30}),
        ("5/20 * * * *", "minutes", {5, 25, 45}),
        ("1,2,40-42 * * * *", "minutes", {1, 2, 40, 41, 42}),
        ("0 9-17 * * *", "hours", set(range(9, 18))),
        ("0 0 1,15 * *", "days_of_month", {1, 15}),
        ("0 0 * JAN-MAR,dec *", "months", {1, 2, 3, 12}),
        ("0 0 * */3 *", "months", {1, 4, 7, 10}),
        ("0 0 * * MON-FRI", "days_of_week", {1, 2, 3, 4, 5}),
        ("0 0 * * 7", "days_of_week", {0}),
        ("0 0 * * 0,7", "days_of_week", {0}),
        ("0 0 * * 5-7", "days_of_week", {5, 6, 0}),
        ("0 0 * * FRI-SUN", "days_of_week", {5, 6, 0}),
        ("0 0 * * sun-sat", "days_of_week", set(range(7))),
    ],
)
def test_fields_parse_to_the_values_they_name(expr: str, field: str, expected: set[int]) -> None:
    assert getattr(CronSchedule.parse(expr, "UTC"), field) == expected


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ],
)
def test_macros_fire_like_their_expansion(macro: str, expansion: str) -> None:
    start = datetime(2023, 12, 30, 7, 13, tzinfo=UTC)
    end = start + timedelta(days=800)
    if macro.lower() == "@hourly":
        end = start + timedelta(days=3)
    assert fires(macro, "Europe/Berlin", start, end) == fires(
        expansion, "Europe/Berlin", start, end
    )


@pytest.mark.parametrize(
    ("expr", "tz", "names"),
    [
        ("61 * * * *", "UTC", "minute field"),
        ("* 24 * * *", "UTC", "hour field"),
        ("* * 0 * *", "UTC", "day-of-month field"),
        ("* * 32 * *", "UTC", "day-of-month field"),
        ("* * * 13 *", "UTC", "month field"),
        ("* * * FOO *", "UTC", "month field"),
        ("* * * * 8", "UTC", "day-of-week field"),
        ("* * * * MONDAY", "UTC", "day-of-week field"),
        ("*/0 * * * *", "UTC", "minute field"),
        ("*/x * * * *", "UTC", "step"),
        ("30-10 * * * *", "UTC", "backwards"),
        ("1,,2 * * * *", "UTC", "empty list item"),
        ("* * * *", "UTC", "5 fields"),
        ("0 * * * * *", "UTC", "5 fields"),
        ("", "UTC", "5 fields"),
        ("@reboot", "UTC", "unknown macro"),
        ("0 0 30 2 *", "UTC", "never fire"),
        ("0 0 31 4,6,9,11 *", "UTC", "never fire"),
        ("0 0 * * *", "Mars/Olympus_Mons", "timezone"),
        ("0 0 * * *", "../etc/passwd", "timezone"),
    ],
)
def test_bad_expressions_name_what_is_wrong(expr: str, tz: str, names: str) -> None:
    with pytest.raises(CronError) as caught:
        CronSchedule.parse(expr, tz)
    assert names in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_feb_30_is_fine_when_day_of_week_can_still_match() -> None:
    # Both day fields restricted: either matches, so February's Mondays keep it alive.
    schedule = CronSchedule.parse("0 0 30 2 MON", "UTC")
    nxt = schedule.next_after(datetime(2024, 1, 2, tzinfo=UTC))
    assert nxt == datetime(2024, 2, 5, tzinfo=UTC)  # the first Monday of February 2024
