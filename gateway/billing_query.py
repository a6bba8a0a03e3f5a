"""Billing queries: the report range and grouping a caller asks for (pure).

Ranges are half-open, [from, to), in epoch seconds; days and months are UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

GROUP_BY = ("function", "day", "version")

_EPOCH_RE = re.compile(r"\d+(\.\d*)?")


class BillingQueryError(ValueError):
    """A bad billing query; `field` is the query parameter at fault ('from', 'to', 'group_by')."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


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
        start = month_start(end)
        if start == end:  # `to` is a month boundary: report the month before it
            start = month_start(end - 1)
    else:
        start = _instant(raw_from, "from", end_of_day=False)
    if start > end:
        raise BillingQueryError("from", f"{iso_utc(start)} is after to ({iso_utc(end)})")
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
    return month_start(period_from)


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
        utc_datetime(value)
    except (ValueError, OverflowError, OSError):
        raise BillingQueryError(name, f"out of range: {raw!r}") from None
    return value


def utc_datetime(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def iso_utc(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC with a "Z" suffix, as reports show range bounds."""
    return utc_datetime(ts).isoformat().replace("+00:00", "Z")


def month_start(ts: float) -> float:
    """The start of the UTC calendar month that `ts` falls in, in epoch seconds."""
    moment = utc_datetime(ts)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp()
