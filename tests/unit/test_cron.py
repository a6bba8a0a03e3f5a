"""Cron schedules: parsing, next fire times across month ends, leap years and DST, and
what a scheduler fires after downtime (driven by an injected clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cron import CronError, CronSchedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int, fold: int = 0
) -> datetime:
    """An instant named by its local wall time (fold=1: the repeat), as aware UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold).astimezone(UTC)


def fires(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire in (start, end]."""
    schedule = CronSchedule.parse(expr, tz)
    out: list[datetime] = []
    t = start
    while (t := schedule.next_after(t)) <= end:
        out.append(t)
    return out


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


# ---------------------------------------------------------------- due, with a clock


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


def run_scheduler(
    schedule: CronSchedule,
    clock: FakeClock,
    until: datetime,
    tick: timedelta,
    down: tuple[datetime, datetime] | None = None,
) -> Iterator[tuple[datetime, datetime]]:
    """What a scheduler loop does: on each tick ask `due`, fire, remember the slot.
    Ticks inside `down` do not happen (the platform is not running)."""
    last: datetime | None = clock.now
    while clock.now < until:
        now = clock.advance(tick)
        if down and down[0] <= now < down[1]:
            continue
        slot = schedule.due(last, now)
        if slot is not None:
            yield slot, now
            last = slot


def test_due_after_downtime_fires_the_latest_missed_slot_once() -> None:
    schedule = CronSchedule.parse("*/10 * * * *", "UTC")
    start = datetime(2024, 5, 1, 8, 0, 5, tzinfo=UTC)
    down = (datetime(2024, 5, 1, 9, 3, tzinfo=UTC), datetime(2024, 5, 1, 11, 47, tzinfo=UTC))
    until = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    clock = FakeClock(start)
    fired = list(run_scheduler(schedule, clock, until, timedelta(seconds=20), down))
    slots = [slot for slot, _ in fired]
    every_ten = [start.replace(second=0) + timedelta(minutes=10 * i) for i in range(1, 40)]
    before = [s for s in every_ten if s < down[0]]
    after = [s for s in every_ten if down[1] <= s <= clock.now]
    missed = [s for s in every_ten if down[0] <= s < down[1]]
    assert slots == [*before, missed[-1], *after]
    assert len(slots) == len(set(slots))
    # The catch-up fire happened at the first tick after the restart, not earlier.
    catch_up_at = dict(fired)[missed[-1]]
    assert down[1] <= catch_up_at < down[1] + timedelta(seconds=20)
    # Every regular fire happened within a tick of its slot.
    assert all(
        timedelta(0) <= at - slot < timedelta(seconds=20)
        for slot, at in fired
        if slot not in missed
    )


def test_due_returns_one_slot_then_nothing_until_the_next() -> None:
    schedule = CronSchedule.parse("0 2 * * *", "Europe/Berlin")
    last = local(BERLIN, 2024, 6, 1, 2, 0)
    now = local(BERLIN, 2024, 6, 4, 9, 30)  # three days of downtime
    slot = schedule.due(last, now)
    assert slot == local(BERLIN, 2024, 6, 4, 2, 0)
    assert schedule.due(slot, now) is None
    assert schedule.due(slot, local(BERLIN, 2024, 6, 5, 1, 59)) is None
    assert schedule.due(slot, local(BERLIN, 2024, 6, 5, 2, 0)) == local(BERLIN, 2024, 6, 5, 2, 0)


def test_due_after_a_long_outage_of_a_dense_schedule() -> None:
    schedule = CronSchedule.parse("* * * * *", "UTC")
    last = datetime(2024, 1, 1, tzinfo=UTC)
    now = datetime(2024, 3, 1, 0, 0, 30, tzinfo=UTC)  # 86,400 missed slots
    assert schedule.due(last, now) == datetime(2024, 3, 1, tzinfo=UTC)


def test_due_with_no_history_waits_for_a_slot() -> None:
    schedule = CronSchedule.parse("0 * * * *", "UTC")
    assert schedule.due(None, datetime(2024, 1, 1, 10, 30, tzinfo=UTC)) is None
    assert schedule.due(None, datetime(2024, 1, 1, 11, 0, 20, tzinfo=UTC)) == datetime(
        2024, 1, 1, 11, tzinfo=UTC
    )


def test_due_when_the_clock_went_backwards() -> None:
    schedule = CronSchedule.parse("* * * * *", "UTC")
    last = datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert schedule.due(last, last - timedelta(minutes=5)) is None


def test_fall_back_fixed_schedule_fires_once_through_the_scheduler() -> None:
    schedule = CronSchedule.parse("30 1 * * *", "America/New_York")
    start = local(NEW_YORK, 2024, 11, 2, 12, 0)
    until = local(NEW_YORK, 2024, 11, 4, 12, 0)
    slots = [s for s, _ in run_scheduler(schedule, FakeClock(start), until, timedelta(minutes=1))]
    assert slots == [
        local(NEW_YORK, 2024, 11, 3, 1, 30, fold=0),
        local(NEW_YORK, 2024, 11, 4, 1, 30),
    ]
