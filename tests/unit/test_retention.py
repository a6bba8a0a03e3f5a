"""Activation retention: the cutoff, and sweeps through the real SQLite store that free space."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.config import retention_days
from invoker.retention import DAY_S, RetentionSweeper, retention_cutoff
from invoker.store.sqlite import SqliteStore
from tests.unit.store_suite import T0, finished, pending, usage_of

BIG = {"blob": "z" * 100_000}  # about 25 pages each


def test_the_cutoff_is_the_retention_period_before_now() -> None:
    assert retention_cutoff(T0, 7) == T0 - 7 * DAY_S
    assert retention_cutoff(T0, 0.5) == T0 - DAY_S / 2
    assert retention_cutoff(T0, 0) is None  # kept forever


def test_the_retention_setting_comes_from_the_flag_then_the_environment() -> None:
    assert retention_days(None, {}) == 7.0
    assert retention_days(None, {"NIMBUS_ACTIVATION_RETENTION_DAYS": "30"}) == 30.0
    assert retention_days(2.5, {"NIMBUS_ACTIVATION_RETENTION_DAYS": "30"}) == 2.5
    assert retention_days(0, {}) == 0.0
    for bad in ("-1", "nan", "inf", "seven"):
        with pytest.raises(ValueError):
            retention_days(None, {"NIMBUS_ACTIVATION_RETENTION_DAYS": bad})


def _pages(path: Path) -> tuple[int, int]:
    """(page_count, freelist_count) of the database file, as another reader sees it."""
    db = sqlite3.connect(path)
    try:
        return (
            int(db.execute("PRAGMA page_count").fetchone()[0]),
            int(db.execute("PRAGMA freelist_count").fetchone()[0]),
        )
    finally:
        db.close()


async def _old_history(store: SqliteStore, round_: int, count: int = 40) -> None:
    for n in range(count):
        done = finished(f"old-{round_}-{n}", start=T0 + n, result=BIG, logs=["x" * 5_000])
        await store.save_activation(done, usage_of(done))


async def test_a_sweep_deletes_old_activations_keeps_the_rest_and_frees_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nimbus.db"
    store = SqliteStore(path)
    await store.open()
    now = T0 + 8 * DAY_S
    sweeper = RetentionSweeper(store, days=7, clock=lambda: now)
    try:
        await _old_history(store, 0)
        recent = finished("recent", start=now - 60, result=BIG)
        await store.save_activation(recent, usage_of(recent))
        await store.enqueue(pending("still-queued"), {}, T0)  # old, but not history yet
        before, _ = _pages(path)

        assert await sweeper.sweep_once() == 40
        after, free = _pages(path)
        assert free == 0  # every freed page went back to the file system
        assert after < before / 10
        assert await store.get_activation("acme", "recent") is not None
        assert await store.get_activation("acme", "still-queued") is not None
        assert await store.get_activation("acme", "old-0-0") is None
        # The bill is untouched: every usage record is still there.
        usage = await store.list_usage("acme", 0, now + 1)
        assert len(usage) == 41

        # Round after round the file does not grow with the history it held: only the
        # usage records (a few pages) stay.
        for round_ in range(1, 4):
            await _old_history(store, round_)
            assert _pages(path)[0] > before * 0.9
            assert await sweeper.sweep_once() == 40
            pages, free = _pages(path)
            assert free == 0 and pages < after + 10 * round_
        assert await sweeper.sweep_once() == 0  # nothing left to sweep
    finally:
        await store.close()


async def test_the_sweeper_runs_in_the_background_and_stops(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nimbus.db")
    await store.open()
    sweeper = RetentionSweeper(store, days=1, interval_s=0.05, clock=lambda: T0 + 2 * DAY_S)
    try:
        await store.save_activation(finished("old", start=T0))
        sweeper.start()
        for _ in range(100):
            if await store.get_activation("acme", "old") is None:
                break
            await asyncio.sleep(0.05)
        assert await store.get_activation("acme", "old") is None
    finally:
        await sweeper.close()
        await store.close()


async def test_retention_zero_keeps_everything(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nimbus.db")
    await store.open()
    try:
        await store.save_activation(finished("old", start=0.0))
        sweeper = RetentionSweeper(store, days=0, interval_s=0.01)
        sweeper.start()  # nothing to run
        assert await sweeper.sweep_once() == 0
        await sweeper.close()
        assert await store.get_activation("acme", "old") is not None
    finally:
        await store.close()
