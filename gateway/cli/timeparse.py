"""`--since`: a time as a user types it (`10m`, `2h`, `1d`, `90s`, an ISO-8601 date or
time, or epoch seconds), as epoch seconds. Pure: `now` is passed in."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from gateway.cli.errors import UsageError

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EPOCH = re.compile(r"\d{9,}(\.\d*)?")  # 9+ digits: a 1970s epoch would be a duration typo


def parse_since(text: str, now: float) -> float:
    """Epoch seconds of `text`: a duration ago (`10m`), an ISO time (naive is UTC) or
    epoch seconds. Raises UsageError naming the accepted forms."""
    raw = text.strip().lower()
    if match := _AGO.fullmatch(raw):
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    if _EPOCH.fullmatch(raw):
        return float(raw)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since takes a duration (30s, 10m, 2h, 1d, 1w), an ISO time "
            f"(2026-05-01T12:00:00Z) or epoch seconds, got {text!r}"
        ) from None
    value = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value):
        raise UsageError(f"--since is out of range: {text!r}")
    return value


def iso(ts: float | None) -> str:
    """Epoch seconds as `2026-05-01T12:00:00Z` (empty for None)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
