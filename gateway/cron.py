"""Cron schedules for `schedule` triggers: parsing, the next fire time, and what is due.

Pure: no I/O and no clock of its own; every instant is passed in (aware datetimes) and
every instant returned is an aware UTC datetime.

Grammar: the five standard fields ``minute hour day-of-month month day-of-week`` with
``*``, lists (``1,15``), ranges (``9-17``), steps (``*/15``, ``0-30/10``, ``5/20`` meaning
``5-59/20``), month names ``JAN``-``DEC`` and day names ``SUN``-``SAT`` (0 and 7 are both
Sunday); or one of ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``), ``@hourly``.

Day matching follows Vixie cron: when both day-of-month and day-of-week are restricted (a
field is restricted unless it starts with ``*``), a day matches if EITHER does; otherwise
both must.

Times are local to the schedule's timezone, and daylight-saving changes are handled so
that a schedule never fires twice for one intended slot:

- a local time that does not exist (skipped by a spring-forward change) does not fire
  that day: ``30 2 * * *`` in Europe/Berlin has no fire on the last Sunday of March;
- a local time that occurs twice (repeated by a fall-back change) fires once, at its first
  occurrence, when the schedule names its hours. A schedule that runs every hour (hour
  field ``*`` or ``*/1``) instead keeps its pace through the repeated hour and fires at
  both occurrences, so ``*/15 * * * *`` does not fall silent for an hour each autumn
  (the same distinction Vixie cron draws between fixed-time and wildcard jobs).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "CronSchedule"]


class CronError(ValueError):
    """A cron expression or timezone that cannot be used; the message names the field."""


MINUTE = timedelta(minutes=1)

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Longest possible gap between two matches of a valid schedule: Feb 29 can be 8 years
# apart (2096 -> 2104). Searching further means there is a bug, not a rare schedule.
SEARCH_HORIZON_DAYS = 9 * 366

# Days each month can have (February counts its leap day), to reject `31 2` at parse time.
MAX_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0


FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    _Field("day-of-week", 0, 7, DAY_NAMES, 0),
)


def _value(text: str, field: _Field, raw: str) -> int:
    upper = text.upper()
    if field.names and upper in field.names:
        return field.names.index(upper) + field.names_start
    if not text.isdigit():
        hint = f" (use {field.names[0]}-{field.names[-1]} or numbers)" if field.names else ""
        raise CronError(f"{field.name} field {raw!r}: {text!r} is not a number{hint}")
    number = int(text)
    if not field.low <= number <= field.high:
        raise CronError(
            f"{field.name} field {raw!r}: {number} is out of range {field.low}-{field.high}"
        )
    return number


def _parse_field(raw: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in raw.split(","):
        if not item:
            raise CronError(f"{field.name} field {raw!r}: empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(
                    f"{field.name} field {raw!r}: step {step_text!r} must be a whole number >= 1"
                )
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, field, raw), _value(last, field, raw)
            if field.name == "day-of-week" and high == 0 < low:
                high = 7  # FRI-SUN: Sunday closing a range is the 7 at the week's end
            if low > high:
                raise CronError(
                    f"{field.name} field {raw!r}: range {base!r} runs backwards "
                    f"(write it as two ranges)"
                )
        else:
            low = _value(base, field, raw)
            # `5/20` means from 5 to the end in steps of 20, as in cronie and Quartz.
            high = field.high if slash else low
        values.update(range(low, high + 1, step))
    if field.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _timezone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a directory, too long
        raise CronError(f"timezone {tz!r} is not a known IANA timezone: {exc}") from None


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression in a timezone. Build with `CronSchedule.parse`."""

    expr: str
    tz: ZoneInfo
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday
    dom_restricted: bool
    dow_restricted: bool

    @classmethod
    def parse(cls, expr: str, tz: str = "UTC") -> CronSchedule:
        """Parse a 5-field expression or an @macro in an IANA timezone.

        Raises CronError naming the field at fault.
        """
        text = expr.strip()
        if text.startswith("@"):
            macro = MACROS.get(text.lower())
            if macro is None:
                known = ", ".join(sorted(MACROS))
                raise CronError(f"unknown macro {text!r}: use one of {known}")
            text = macro
        parts = text.split()
        if len(parts) != 5:
            raise CronError(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week) "
                f"or is a macro such as @daily; got {len(parts)} in {expr!r}"
            )
        minutes, hours, doms, months, dows = (
            _parse_field(raw, field) for raw, field in zip(parts, FIELDS, strict=True)
        )
        dom_restricted = not parts[2].startswith("*")
        dow_restricted = not parts[4].startswith("*")
        if not dow_restricted and not any(
            day <= MAX_DAYS_IN_MONTH[month - 1] for day in doms for month in months
        ):
            raise CronError(
                f"day-of-month field {parts[2]!r}: no such day in month field {parts[3]!r}, "
                "so the schedule would never fire"
            )
        return cls(
            expr=expr.strip(),
            tz=_timezone(tz),
            minutes=minutes,
            hours=hours,
            days_of_month=doms,
            months=months,
            days_of_week=dows,
            dom_restricted=dom_restricted,
            dow_restricted=dow_restricted,
        )

    # ---- matching local wall-clock times

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_dom = day.day in self.days_of_month
        in_dow = (day.isoweekday() % 7) in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return in_dom or in_dow
        return in_dom and in_dow

    def matches_wall(self, wall: datetime) -> bool:
        """Whether a naive local wall-clock time is one of the schedule's slots."""
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and self._day_matches(wall.date())
        )

    @cached_property
    def _times(self) -> list[tuple[int, int]]:
        """(hour, minute) of every slot in a matching day, ascending."""
        return [(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]

    def _walls_from(self, start: datetime) -> Iterator[datetime]:
        """Matching naive wall times >= start (minute resolution), ascending."""
        times = self._times
        first = start.replace(second=0, microsecond=0)
        if first < start:
            first += MINUTE
        day = first.date()
        skip = bisect_left(times, (first.hour, first.minute))  # only the first day starts late
        for _ in range(SEARCH_HORIZON_DAYS):
            if self._day_matches(day):
                for hour, minute in times[skip:]:
                    yield datetime(day.year, day.month, day.day, hour, minute)
            skip = 0
            day += timedelta(days=1)
        raise CronError(f"{self.expr!r} has no slot within {SEARCH_HORIZON_DAYS} days of {start}")

    # ---- mapping wall times to instants

    def _instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants at which the local clock reads `wall` and the schedule fires:
        none in a spring-forward gap; both occurrences of a repeated time only for
        every-hour schedules, else the first."""
        found: list[datetime] = []
        for fold in (0, 1):
            instant = wall.replace(tzinfo=self.tz, fold=fold).astimezone(UTC)
            # zoneinfo maps a nonexistent time to some instant anyway; the round trip tells.
            if instant.astimezone(self.tz).replace(tzinfo=None) == wall and instant not in found:
                found.append(instant)
        found.sort()
        return found if self._every_hour else found[:1]

    @property
    def _every_hour(self) -> bool:
        return len(self.hours) == 24

    def _local_wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    # ---- public queries

    def next_after(self, t: datetime) -> datetime:
        """The first slot strictly after `t` (aware), as an aware UTC datetime."""
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        u = t.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE  # first candidate
        wall = self._local_wall(u)
        best: datetime | None = None
        for candidate in self._walls_from(wall):
            later = [i for i in self._instants(candidate) if i >= u]
            if later:
                best = later[0]
                break
        assert best is not None  # _walls_from raises rather than running dry
        # Inside the first pass of a repeated hour, times already passed on the wall clock
        # come round again after the change; an every-hour schedule fires at them too.
        if self._every_hour:
            first, second = (wall.replace(tzinfo=self.tz, fold=f).astimezone(UTC) for f in (0, 1))
            if first == u and second > u:
                for candidate in self._walls_from(wall - (second - first)):
                    if candidate > wall:
                        break
                    repeats = [i for i in self._instants(candidate) if i >= u]
                    if repeats:  # the earliest repeat: later walls repeat later
                        best = min(best, repeats[0])
                        break
        return best

    def due(self, last_fire: datetime | None, now: datetime) -> datetime | None:
        """The slot to fire now, or None.

        Returns the most recent slot in (last_fire, now]: after downtime that skipped
        several slots, only the latest fires, once. The caller records the returned slot
        as its next `last_fire`. With no `last_fire` (a schedule that never fired), only
        a slot within the last minute counts, so a new trigger waits for its next slot
        rather than firing for one that passed before it existed.
        """
        if now.tzinfo is None or (last_fire is not None and last_fire.tzinfo is None):
            raise ValueError("due needs timezone-aware datetimes")
        now = now.astimezone(UTC)
        floor = now - MINUTE if last_fire is None else last_fire.astimezone(UTC)
        if floor >= now or self.next_after(floor) > now:
            return None
        # Widen a window back from `now` until it holds a slot, then walk forward to the
        # last one: cheap for dense schedules after a long outage, and never per-slot.
        width = MINUTE
        while True:
            start = max(now - width, floor)
            slot = self.next_after(start)
            if slot <= now:
                break
            width *= 2
        while (following := self.next_after(slot)) <= now:
            slot = following
        return slot
