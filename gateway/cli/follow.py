"""Following activations as `wsk activation poll` does: each poll reads the newest page,
and what finished since the last one is shown, oldest first, once.

`Tracker` is the pure part (what is new in a page); `poll` the loop, with its clock and
sleep passed in. A call still pending or running is not shown until it ends, so its
status, result and logs are final when printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

UNFINISHED = frozenset({"pending", "running"})
MIN_INTERVAL_S = 0.5
MAX_INTERVAL_S = 60.0
SEEN_CAP = 10_000  # ids remembered; older ones are far below any page a poll reads

Activation = Mapping[str, Any]


def bounded_interval(seconds: float) -> float:
    """The poll interval, kept within [0.5 s, 60 s]: never a busy loop, never asleep."""
    return min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, seconds))


@dataclass(frozen=True)
class Filter:
    """Which activations a listing shows: from `since` (epoch seconds), of `status`."""

    since: float | None = None
    status: str | None = None

    def keeps(self, a: Activation) -> bool:
        """Whether `a` passes the filter."""
        start = a.get("start")
        if self.since is not None and (start is None or start < self.since):
            return False
        return self.status is None or a.get("status") == self.status

    def older(self, a: Activation) -> bool:
        """Whether `a` started before `since` (a newest-first listing can stop there)."""
        start = a.get("start")
        return self.since is not None and start is not None and start < self.since


@dataclass
class Tracker:
    """The finished activations already shown (or, on the first page, already there)."""

    filter: Filter
    seen: dict[str, None] = field(default_factory=dict)
    primed: bool = False

    def fresh(self, newest_first: Sequence[Activation]) -> list[Activation]:
        """The page's finished activations not seen before that pass the filter, oldest
        first. Without `since`, the first page only marks what is already there."""
        found: list[Activation] = []
        for a in reversed(newest_first):
            ident = str(a["activation_id"])
            if a.get("status") in UNFINISHED or ident in self.seen:
                continue
            self._remember(ident)
            if (self.primed or self.filter.since is not None) and self.filter.keeps(a):
                found.append(a)
        self.primed = True
        return found

    def _remember(self, ident: str) -> None:
        self.seen[ident] = None
        while len(self.seen) > SEEN_CAP:
            del self.seen[next(iter(self.seen))]


def poll(
    fetch: Callable[[], Sequence[Activation]],
    show: Callable[[Iterable[Activation]], None],
    tracker: Tracker,
    interval_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    ready: Callable[[], None] = lambda: None,
    rounds: int | None = None,
) -> None:
    """Fetch, show what is new, sleep; until interrupted (or `rounds` polls, for tests).
    `ready` is called once the first poll has been read: from then on nothing is missed."""
    done = 0
    while rounds is None or done < rounds:
        show(tracker.fresh(fetch()))
        if not done:
            ready()
        done += 1
        if rounds is None or done < rounds:
            sleep(bounded_interval(interval_s))
