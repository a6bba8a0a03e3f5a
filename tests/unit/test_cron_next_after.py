"""Cron schedules: next fire times across month ends, leap years and DST, and a
brute-force search that agrees with them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cron import CronError, CronSchedule
from tests.unit.cron_times import BERLIN, NEW_YORK, fires, local

# ---------------------------------------------------------------- next_after


def test_month_end_and_months_without_the_day() -> None:
    start = datetime(2024, 1, 31, 10, tzinfo=UTC)
    assert CronSchedule.parse("0 0 1 * *", "UTC").next_after(start) == datetime(
        2024, 2, 1, tzinfo=UTC
    )
    # The 31st skips February, April, June, ...: Jan 31 -> Mar 31 -> May 31.
    got = fires("0 12 31 * *", "UTC", start, datetime(2024, 6, 1, tzinfo=UTC))
    assert [t.date().isoformat() for t in got] == ["2024-01-31", "2024-03-31", "2024-05-31"]


def test_leap_days_including_the_2100_gap() -> None:
    schedule = CronSchedule.parse("0 0 29 2 *", "UTC")
    assert schedule.next_after(datetime(2023, 3, 1, tzinfo=UTC)) == datetime(
        2024, 2, 29, tzinfo=UTC
    )
    assert schedule.next_after(datetime(2024, 2, 29, tzinfo=UTC)) == datetime(
        2028, 2, 29, tzinfo=UTC
    )
    # 2100 is not a leap year: eight years between Feb 29s.
    assert schedule.next_after(datetime(2096, 3, 1, tzinfo=UTC)) == datetime(
        2104, 2, 29, tzinfo=UTC
    )


def test_result_is_strictly_after_t_even_on_a_slot() -> None:
    schedule = CronSchedule.parse("*/5 * * * *", "UTC")
    slot = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    assert schedule.next_after(slot) == slot + timedelta(minutes=5)
    assert schedule.next_after(slot - timedelta(microseconds=1)) == slot


def test_or_rule_when_both_day_fields_are_restricted() -> None:
    # "the 13th, and every Friday"
    got = fires(
        "0 0 13 * FRI", "UTC", datetime(2024, 9, 1, tzinfo=UTC), datetime(2024, 9, 30, tzinfo=UTC)
    )
    days = [t.day for t in got]
    fridays = [d for d in range(1, 31) if datetime(2024, 9, d).weekday() == 4]
    assert days == sorted({13, *fridays})


def test_and_rule_when_one_day_field_starts_with_a_star() -> None:
    # `*/2` starts with `*`: Vixie cron treats it as unrestricted, so both must match.
    got = fires(
        "0 0 */2 * MON", "UTC", datetime(2024, 9, 1, tzinfo=UTC), datetime(2024, 10, 31, tzinfo=UTC)
    )
    assert got and all(t.weekday() == 0 and t.day % 2 == 1 for t in got)


def test_weekdays_skip_the_weekend_in_local_time() -> None:
    got = fires(
        "0 9 * * MON-FRI",
        "America/New_York",
        datetime(2024, 6, 7, 14, tzinfo=UTC),  # Friday 10:00 in New York
        datetime(2024, 6, 11, 23, tzinfo=UTC),
    )
    assert got == [local(NEW_YORK, 2024, 6, 10, 9, 0), local(NEW_YORK, 2024, 6, 11, 9, 0)]


@pytest.mark.parametrize(
    ("tz", "gap_day"),
    [(BERLIN, (2024, 3, 31)), (NEW_YORK, (2024, 3, 10))],
)
def test_spring_forward_skips_the_missing_time(tz: ZoneInfo, gap_day: tuple[int, int, int]) -> None:
    day = datetime(*gap_day)
    before = local(tz, *gap_day, 0, 0) - timedelta(hours=1)
    nxt = CronSchedule.parse("30 2 * * *", tz.key).next_after(before)
    following = day + timedelta(days=1)
    assert nxt == local(tz, following.year, following.month, following.day, 2, 30)
    # An hourly schedule fires on every hour that exists: 23 on a 23-hour day.
    start_of_day = local(tz, *gap_day, 0, 0) - timedelta(seconds=1)
    end_of_day = local(tz, following.year, following.month, following.day, 0, 0) - timedelta(
        seconds=1
    )
    hourly = fires("0 * * * *", tz.key, start_of_day, end_of_day)
    assert len(hourly) == 23
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(hourly))


@pytest.mark.parametrize(
    ("tz", "day", "repeated_hour"),
    [(BERLIN, (2024, 10, 27), 2), (NEW_YORK, (2024, 11, 3), 1)],
)
def test_fall_back_fires_a_fixed_time_once_and_keeps_hourly_pace(
    tz: ZoneInfo, day: tuple[int, int, int], repeated_hour: int
) -> None:
    start = local(tz, *day, 0, 0) - timedelta(seconds=1)
    end = local(tz, *day, 23, 59)
    fixed = fires(f"30 {repeated_hour} * * *", tz.key, start, end)
    assert fixed == [local(tz, *day, repeated_hour, 30, fold=0)]  # the first occurrence
    # `*/15 * * * *` keeps firing every 15 real minutes through the repeated hour.
    quarter = fires("*/15 * * * *", tz.key, start, end)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(quarter))
    assert local(tz, *day, repeated_hour, 30, fold=1) in quarter
    assert len(fires("0 * * * *", tz.key, start, end)) == 25  # a 25-hour day


def test_next_after_inside_the_repeated_hour() -> None:
    schedule = CronSchedule.parse("*/20 * * * *", "Europe/Berlin")
    # 02:50 CEST, first pass of the repeated hour: next is 02:00 CET, not 03:00 CET.
    first_pass = local(BERLIN, 2024, 10, 27, 2, 50, fold=0)
    assert schedule.next_after(first_pass) == local(BERLIN, 2024, 10, 27, 2, 0, fold=1)
    second_pass = local(BERLIN, 2024, 10, 27, 2, 45, fold=1)
    assert schedule.next_after(second_pass) == local(BERLIN, 2024, 10, 27, 3, 0)
    fixed = CronSchedule.parse("40 2 * * *", "Europe/Berlin")
    assert fixed.next_after(first_pass) == local(BERLIN, 2024, 10, 28, 2, 40)
    # 02:40 already fired in the first pass: the repeat must not fire it again.
    early_second_pass = local(BERLIN, 2024, 10, 27, 2, 10, fold=1)
    assert fixed.next_after(early_second_pass) == local(BERLIN, 2024, 10, 28, 2, 40)


def test_naive_datetimes_are_refused() -> None:
    schedule = CronSchedule.parse("@daily", "UTC")
    with pytest.raises(ValueError, match="aware"):
        schedule.next_after(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        schedule.due(None, datetime(2024, 1, 1))


def test_input_in_another_zone_gives_utc_out() -> None:
    schedule = CronSchedule.parse("0 12 * * *", "Europe/Berlin")
    t = datetime(2024, 7, 1, 1, 0, tzinfo=NEW_YORK)
    nxt = schedule.next_after(t)
    assert nxt.tzinfo is UTC
    assert nxt == local(BERLIN, 2024, 7, 1, 12, 0)


# ------------------------------------------------------- property: brute force agrees


def _brute_next(
    t: datetime, tz: ZoneInfo, sets: dict[str, set[int]], dom_star: bool, dow_star: bool
) -> datetime:
    """Walk UTC minute by minute (hour by hour across days that cannot match)."""

    def day_ok(wall: datetime) -> bool:
        if wall.month not in sets["months"]:
            return False
        in_dom = wall.day in sets["doms"]
        in_dow = (wall.isoweekday() % 7) in sets["dows"]
        return (in_dom and in_dow) if (dom_star or dow_star) else (in_dom or in_dow)

    every_hour = len(sets["hours"]) == 24
    u = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(3_000_000):
        wall = u.astimezone(tz)
        if not day_ok(wall) and not day_ok((u + timedelta(hours=1)).astimezone(tz)):
            u += timedelta(hours=1)
            continue
        if (
            day_ok(wall)
            and wall.hour in sets["hours"]
            and wall.minute in sets["minutes"]
            and (wall.fold == 0 or every_hour)
        ):
            return u
        u += timedelta(minutes=1)
    raise AssertionError("brute force found nothing")


# Instants of daylight-saving changes, so hypothesis also starts inside gaps and repeats.
DST_CHANGES = [
    datetime(2024, 3, 31, 1, tzinfo=UTC),  # Europe: spring forward
    datetime(2024, 10, 27, 1, tzinfo=UTC),  # Europe: fall back
    datetime(2024, 3, 10, 7, tzinfo=UTC),  # New York: spring forward
    datetime(2024, 11, 3, 6, tzinfo=UTC),  # New York: fall back
    datetime(2024, 4, 6, 15, tzinfo=UTC),  # Lord Howe: back 30 minutes
    datetime(2024, 10, 5, 15, 30, tzinfo=UTC),  # Lord Howe: forward 30 minutes
]


def _field(values: set[int] | None) -> str:
    return "*" if values is None else ",".join(str(v) for v in sorted(values))


@settings(max_examples=300, deadline=None)
@given(
    minutes=st.none() | st.sets(st.integers(0, 59), min_size=1, max_size=3),
    hours=st.none() | st.sets(st.integers(0, 23), min_size=1, max_size=4),
    doms=st.none() | st.sets(st.integers(1, 31), min_size=1, max_size=3),
    months=st.none() | st.sets(st.integers(1, 12), min_size=2, max_size=6),
    dows=st.none() | st.sets(st.integers(0, 6), min_size=1, max_size=3),
    tz=st.sampled_from(
        ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
    ),
    t=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    )
    | st.builds(
        lambda change, minutes: change + timedelta(minutes=minutes),
        st.sampled_from(DST_CHANGES),
        st.integers(-180, 180),
    ),
)
def test_next_after_is_after_t_matches_and_is_the_first(
    minutes: set[int] | None,
    hours: set[int] | None,
    doms: set[int] | None,
    months: set[int] | None,
    dows: set[int] | None,
    tz: str,
    t: datetime,
) -> None:
    expr = " ".join(_field(v) for v in (minutes, hours, doms, months, dows))
    try:
        schedule = CronSchedule.parse(expr, tz)
    except CronError as exc:
        assert "never fire" in str(exc)
        return
    nxt = schedule.next_after(t)
    assert nxt > t and nxt.tzinfo is UTC
    wall = nxt.astimezone(ZoneInfo(tz))
    assert minutes is None or wall.minute in minutes
    assert hours is None or wall.hour in hours
    sets = {
        "minutes": minutes or set(range(60)),
        "hours": hours or set(range(24)),
        "doms": doms or set(range(1, 32)),
        "months": months or set(range(1, 13)),
        "dows": dows or set(range(7)),
    }
    assert nxt == _brute_next(t, ZoneInfo(tz), sets, doms is None, dows is None)
