"""Small batches of queued writes committed on the event loop's own thread.

A synchronous call's record is queued behind its answer and committed in a batch
(`WRITE_BEHIND_WINDOW_S`). Handing each batch to the store's thread cost the gateway more
CPU than the write itself: the thread and the loop take turns at the GIL several times per
batch (sqlite3 lets it go around every statement), and on a machine whose two cores are
hyperthreads of one, each slows the other while both run. Measured under 16 clients
(`bench/invoke_latency.py`, docs/performance.md): the store thread spent ~0.11 ms per
call; the same rows committed on the loop cost it ~0.02 ms.

So a batch that is cheap to write (few rows, each small: `small_activation`) is committed
here, on a second connection of the loop's own, when the store's thread has nothing in
hand (so writes keep their order). That connection never waits for a lock
(`busy_timeout=0`): when another worker or the CLI is writing, the batch goes to the
store's thread as before. It never checkpoints either (a checkpoint writes and syncs the
whole log): `checkpoint_due` tells the store to have its thread do it. Anything larger,
and every other statement, stays on the store's thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from invoker.api import Activation

log = logging.getLogger("nimbus.store")

MAX_ROWS = 64
"""Rows a batch may hold to be written on the loop (~35 us each)."""
MAX_VALUES = 64
"""Values (items, keys and leaves) a call's result may hold to count as small."""
MAX_TEXT = 1024
"""Characters a string (a result's, a log line, an error) may hold to count as small."""
MAX_LOG_LINES = 16
CHECKPOINT_EVERY = 256
"""Batches committed here between two checkpoints on the store's thread."""

Row = Callable[[], tuple[Any, ...]]
_SCALARS = frozenset({int, float, bool, type(None)})


def small(value: Any, budget: int = MAX_VALUES) -> bool:
    """PURE: whether `value` is JSON that encodes in microseconds: at most `budget` values
    and no string over `MAX_TEXT`. Looks at no more than `budget` values, however large
    `value` is."""
    todo = [value]
    seen = 0
    while todo:
        item = todo.pop()
        seen += 1
        if seen > budget:
            return False
        kind = type(item)
        if kind in _SCALARS:  # by type first: most of a result, and no ABC check
            continue
        if kind is str:
            if len(item) > MAX_TEXT:
                return False
        elif isinstance(item, Mapping):
            if len(item) > budget:
                return False
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            if len(item) > budget:
                return False
            todo.extend(item)
        elif isinstance(item, str) and len(item) > MAX_TEXT:  # a str subclass
            return False
    return True


def small_activation(activation: Activation) -> bool:
    """PURE: whether an activation's row is cheap to build and write on the loop."""
    logs, error = activation.logs, activation.error
    if logs and (len(logs) > MAX_LOG_LINES or any(len(line) > MAX_TEXT for line in logs)):
        return False
    return (error is None or len(error) <= MAX_TEXT) and small(activation.result)


def connect(path: Path) -> sqlite3.Connection:
    """The loop's connection to the store's file (opened after the store's, which made the
    schema): it never waits for a lock and never checkpoints."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=0)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


class LoopWriter:
    """Commits small batches on the loop's own connection; says when to checkpoint."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._since_checkpoint = 0

    def write(self, batch: Mapping[str, Sequence[Row]]) -> bool:
        """Commit `batch` (statement -> its rows, in order) here; False when it is not
        written (too large, or the file is locked): the caller hands it to the store's
        thread, which writes it or logs why not."""
        if sum(len(rows) for rows in batch.values()) > MAX_ROWS:
            return False
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock now, or SQLITE_BUSY at once
        except sqlite3.Error:
            return False
        try:
            for sql, rows in batch.items():
                db.executemany(sql, [row() for row in rows])
            db.execute("COMMIT")
        except Exception as exc:  # the store's thread tries it again, and logs what fails
            if db.in_transaction:
                db.execute("ROLLBACK")
            log.debug("a queued batch goes to the store's thread: %s", exc)
            return False
        self._since_checkpoint += 1
        return True

    def checkpoint_due(self) -> bool:
        """Whether enough was committed here since the last checkpoint (and count anew)."""
        if self._since_checkpoint < CHECKPOINT_EVERY:
            return False
        self._since_checkpoint = 0
        return True

    def close(self) -> None:
        """Close the loop's connection."""
        self._db.close()
