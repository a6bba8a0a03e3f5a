"""A synchronous call's record, queued behind its answer, is committed on the event loop's
own connection when its batch is small (invoker/store/sqlite/loop_writes.py), and by the
store's thread otherwise, or while another connection holds the file's write lock. Either
way nothing queued is lost, and another connection (the CLI's, another worker's) sees it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from invoker.store.sqlite import SqliteStore, loop_writes
from invoker.store.sqlite.connection import WRITE_BEHIND_WINDOW_S
from invoker.store.sqlite.loop_writes import small, small_activation
from tests.unit.store_suite import T0, finished

USAGE = {"start": T0, "gb_seconds": "0.0001", "billed_ms": 1}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "nimbus.db")
    await opened.open()
    yield opened
    await opened.close()


def rows_seen(path: Path) -> tuple[list[str], list[str]]:
    """The activation and usage ids another connection sees now."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        acts = [r[0] for r in db.execute("SELECT id FROM activations ORDER BY id")]
        usage = [r[0] for r in db.execute("SELECT activation_id FROM usage ORDER BY 1")]
    return acts, usage


def test_small_is_a_bounded_look() -> None:
    assert small({"width": 640, "tags": ["jpeg", "png"], "nested": {"a": None}})
    assert small(None) and small(7) and small("x" * 1024)
    assert not small("x" * 1025)
    assert not small({"k": ["x" * 2000]})
    assert not small(dict.fromkeys(range(100), 1))
    assert not small(list(range(10**6)))  # refused on its length, not walked
    assert not small([[[i] for i in range(50)] for _ in range(50)])  # 2,600 values in all
    assert small([[[i] for i in range(5)] for _ in range(5)])  # 56 values


class _Text(str):
    pass


def test_small_judges_subclasses_as_their_kind() -> None:
    # Scalars are recognised by their exact type first; a subclass takes the long way and
    # is judged the same.
    assert small({"flag": True, "n": 3, "x": 0.5, "none": None, "s": _Text("x" * 1024)})
    assert not small({"s": _Text("x" * 1025)})
    assert not small([_Text("x" * 1025)])
    assert not small({_Text("k" * 1025): 1})  # keys count as strings too
    assert not small([True] * 65)  # scalars still count against the budget


def test_an_activation_with_many_or_long_lines_is_not_small() -> None:
    plain = finished("a1")
    assert small_activation(plain)
    assert not small_activation(replace(plain, logs=["line"] * 17))
    assert not small_activation(replace(plain, logs=["x" * 5000]))
    assert not small_activation(replace(plain, error="e" * 5000))
    assert not small_activation(replace(plain, result={"big": "x" * 100_000}))


async def test_a_small_record_is_committed_on_the_loop_and_seen_by_another_connection(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store.save_activation(finished("a1"), USAGE, wait=False)
    await store.save_activation(finished("a2"), USAGE, wait=False)
    assert rows_seen(tmp_path / "nimbus.db") == ([], [])  # queued behind the answers
    await asyncio.sleep(WRITE_BEHIND_WINDOW_S * 4)  # no store call: the window ends it
    assert rows_seen(tmp_path / "nimbus.db") == (["a1", "a2"], ["a1", "a2"])
    writer = store._loop_writer
    assert writer is not None and writer._since_checkpoint == 1  # one batch, on the loop
    got = await store.get_activation("acme", "a2")
    assert got is not None and got.result == finished("a2").result


async def test_a_large_record_is_written_by_the_stores_thread(
    store: SqliteStore, tmp_path: Path
) -> None:
    big = replace(finished("big"), result={"big": "x" * 100_000})
    await store.save_activation(finished("small"), USAGE, wait=False)
    await store.save_activation(big, USAGE, wait=False)  # the whole batch goes to the thread
    await store.commit_queued()
    assert rows_seen(tmp_path / "nimbus.db") == (["big", "small"], ["big", "small"])
    writer = store._loop_writer
    assert writer is not None and writer._since_checkpoint == 0
    got = await store.get_activation("acme", "big")
    assert got is not None and got.result == big.result


async def test_a_batch_queued_while_another_connection_writes_is_not_lost(
    store: SqliteStore, tmp_path: Path
) -> None:
    path = tmp_path / "nimbus.db"
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another worker (or the CLI) holds the write lock
    try:
        await store.save_activation(finished("a1"), USAGE, wait=False)
        started = time.perf_counter()
        await asyncio.sleep(WRITE_BEHIND_WINDOW_S * 4)  # the loop could not write it
        # The loop never waited for the lock (the sleep is not stretched by it).
        assert time.perf_counter() - started < 1.0
        asyncio.get_running_loop().call_later(0.3, blocker.execute, "COMMIT")
        await store.commit_queued()  # the store's thread waited for the lock, then wrote
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()
    assert rows_seen(path) == (["a1"], ["a1"])


async def test_the_log_is_checkpointed_while_the_loop_writes(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_writes, "CHECKPOINT_EVERY", 8)
    for n in range(300):
        await store.save_activation(finished(f"a{n:03d}"), USAGE, wait=False)
        await store.commit_queued()  # a batch each: 300 commits of the loop's connection
    wal = tmp_path / "nimbus.db-wal"
    # Unchecked, 300 commits of ~8 pages each would leave a log of ~10 MB.
    assert wal.stat().st_size < 2_000_000, wal.stat().st_size
    assert len(rows_seen(tmp_path / "nimbus.db")[0]) == 300
