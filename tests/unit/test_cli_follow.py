"""`--follow`: each finished activation is shown once, oldest first; unfinished ones wait;
the poll interval is bounded."""

from __future__ import annotations

from typing import Any

from gateway.cli.follow import SEEN_CAP, Filter, Tracker, bounded_interval, poll


def act(ident: str, start: float, status: str = "success") -> dict[str, Any]:
    return {"activation_id": ident, "start": start, "status": status}


def ids(found: list[Any]) -> list[str]:
    return [a["activation_id"] for a in found]


def test_without_since_only_what_finishes_after_the_first_poll_is_shown() -> None:
    tracker = Tracker(Filter())
    assert tracker.fresh([act("b", 2), act("a", 1), act("p", 3, "running")]) == []
    page = [act("d", 5), act("p", 3, "success"), act("c", 4, "pending"), act("b", 2)]
    assert ids(tracker.fresh(page)) == ["p", "d"]  # oldest first; c still pending
    assert ids(tracker.fresh([act("c", 4, "timeout"), *page])) == ["c"]
    assert tracker.fresh([act("c", 4, "timeout"), *page]) == []


def test_with_since_and_status_the_first_poll_shows_the_matching_past() -> None:
    tracker = Tracker(Filter(since=2, status="success"))
    page = [act("c", 3, "application_error"), act("b", 2), act("a", 1)]
    assert ids(tracker.fresh(page)) == ["b"]
    assert ids(tracker.fresh([act("d", 4), *page])) == ["d"]


def test_the_filter() -> None:
    flt = Filter(since=10)
    assert flt.keeps(act("a", 10)) and not flt.keeps(act("a", 9))
    assert flt.older(act("a", 9)) and not Filter().older(act("a", 0))


def test_the_seen_ids_stay_bounded() -> None:
    tracker = Tracker(Filter())
    tracker.fresh([act(str(i), i) for i in range(SEEN_CAP + 50)])
    assert len(tracker.seen) == SEEN_CAP


def test_poll_shows_each_round_and_sleeps_a_bounded_interval_between() -> None:
    pages = iter([[act("a", 1)], [act("b", 2), act("a", 1)], [act("b", 2), act("a", 1)]])
    shown: list[list[str]] = []
    slept: list[float] = []
    poll(
        lambda: next(pages),
        lambda batch: shown.append(ids(list(batch))),
        Tracker(Filter()),
        0.01,
        sleep=slept.append,
        rounds=3,
    )
    assert shown == [[], ["b"], []] and slept == [0.5, 0.5]
    assert bounded_interval(0) == 0.5 and bounded_interval(3600) == 60 and bounded_interval(2) == 2
