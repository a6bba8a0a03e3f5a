"""Instants named by local wall time, and the fires of a cron schedule between two."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.cron import CronSchedule

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
