"""PURE: OpenWhisk's query parameters: booleans, `limit`/`skip`/`count`, epoch times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import TypeVar

from gateway.errors import ApiError

DEFAULT_LIMIT = 30
MAX_LIMIT = 200  # `limit=0` means this, as on OpenWhisk
T = TypeVar("T")


def flag(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A `true`/`false` query parameter."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = raw.lower()
    if value not in ("true", "false"):
        raise ApiError(400, f"The query parameter '{name}' must be true or false.")
    return value == "true"


def integer(query: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A non-negative integer query parameter."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"The query parameter '{name}' must be an integer.") from None
    if value < 0:
        raise ApiError(400, f"The query parameter '{name}' must not be negative.")
    return value


@dataclass(frozen=True)
class Window:
    """Which entries of a listing to answer: `skip` then `limit`, or only their `count`."""

    skip: int
    limit: int
    count: bool

    def page(self, entries: Sequence[T]) -> list[T]:
        """The entries of this window."""
        return list(entries[self.skip : self.skip + self.limit])

    def counted(self, entries: Sized) -> int:
        """How many entries `count=true` answers: those after `skip`."""
        return max(0, len(entries) - self.skip)


def window(query: Mapping[str, str]) -> Window:
    """`limit` (0-200, default 30; 0 is 200), `skip` and `count`."""
    limit = integer(query, "limit", DEFAULT_LIMIT) or MAX_LIMIT
    if limit > MAX_LIMIT:
        raise ApiError(400, f"The value '{limit}' exceeds the allowed limit of {MAX_LIMIT}.")
    return Window(skip=integer(query, "skip", 0) or 0, limit=limit, count=flag(query, "count"))
