"""Cron schedules: what a scheduler fires after downtime, driven by an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from gateway.cron import CronSchedule
from tests.unit.cron_times import BERLIN, NEW_YORK, local

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
