"""What each index costs the record of a call: the store's schema with one index dropped.

    .venv/bin/python bench/record_indexes.py [--rows 20000] [--calls 3000] [--batch 10]

Raw sqlite3 on a file made by the SQLite store's own `migrate` (every table and index of
a real store), written with the store's own activation and usage statements, in batches
of `--batch` calls per transaction as the gateway's write-behind commits them, with
random activation ids as the gateway makes them. After `--rows` calls of warm-up, each
variant's CPU per call is the minimum over `--rounds` rounds, variants interleaved within
each round. `activations_by_seq` is not dropped: the insert's next-sequence subquery
needs it (without it every insert scans the table). One more variant keeps every index
but writes ids in increasing order: what the two indexes keyed by a random id cost (ids
must stay random, docs/api.md; ordered ones would need keyed ids, a counter under a
keyed permutation).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from invoker.store.sql.activations import USAGE_INSERT, upsert_sql
from invoker.store.sqlite.dialect import SqliteDialect
from invoker.store.sqlite.schema import migrate

DROPPABLE = (
    "activations_page",
    "activations_page_by_function",
    "activations_by_time",
    "usage_by_tenant",
    "usage_by_start",
)


ORDERED = "ordered ids"


def rows(n: int, ordered: bool) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """One warm no-op call's activation and usage rows, with a random id (or the n-th)."""
    aid, start = f"{n:032x}" if ordered else os.urandom(16).hex(), 1.7e9 + n * 0.001
    activation: tuple[Any, ...] = (aid, "t1", "noop", 1, "success", '{"x": 1}', None, "[]", start)
    activation += (start + 0.0008, 0.5, 0.0, 0.02, 0, 128, "local", None, 7.2, 0.0004, 1, 0, 30)
    usage = {"activation_id": aid, "tenant": "t1", "function": "noop", "gb_seconds": "6e-05"}
    return activation, (aid, 1, "t1", start, json.dumps(usage))


class Variant:
    """A store file with `dropped` indexes gone, and a counter of calls written to it."""

    def __init__(self, directory: Path, dropped: str | None) -> None:
        self.ordered = dropped == ORDERED
        self.db = sqlite3.connect(directory / f"{dropped or 'full'}.db", isolation_level=None)
        for pragma in ("auto_vacuum=INCREMENTAL", "journal_mode=WAL", "synchronous=NORMAL"):
            self.db.execute(f"PRAGMA {pragma}")
        migrate(self.db)
        if dropped is not None and not self.ordered:
            self.db.execute(f"DROP INDEX {dropped}")
        self.db.execute("PRAGMA wal_autocheckpoint=0")  # as the loop's connection
        self.insert = upsert_sql(SqliteDialect())
        self.written = 0

    def write(self, calls: int, batch: int) -> float:
        """Write `calls` calls in transactions of `batch`; CPU seconds it took."""
        made = [rows(self.written + i, self.ordered) for i in range(calls)]
        self.written += calls
        began = time.process_time()
        for at in range(0, calls, batch):
            chunk = made[at : at + batch]
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(self.insert, [a for a, _ in chunk])
            self.db.executemany(USAGE_INSERT, [u for _, u in chunk])
            self.db.execute("COMMIT")
        spent = time.process_time() - began
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the store's thread does this
        return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="calls written first")
    parser.add_argument("--calls", type=int, default=3_000, help="calls timed per round")
    parser.add_argument("--batch", type=int, default=10, help="calls per transaction")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nb-idx-") as tmp:
        variants = {name: Variant(Path(tmp), name) for name in (None, *DROPPABLE, ORDERED)}
        for variant in variants.values():
            variant.write(args.rows, args.batch)
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(args.rounds):
            for name, variant in variants.items():
                per_call = variant.write(args.calls, args.batch) / args.calls * 1e6
                best[name] = min(best[name], per_call)
    full = best[None]
    print(f"record of a call, raw SQLite, {args.batch} calls a transaction, after {args.rows}")
    print(f"{'schema':<40}{'us/call':>9}{'index costs':>13}")
    print(f"{'full (as the store makes it)':<40}{full:>9.1f}")
    for name in DROPPABLE:
        print(f"{'without ' + name:<40}{best[name]:>9.1f}{full - best[name]:>13.1f}")
    print(
        f"{'full, ids in increasing order':<40}{best[ORDERED]:>9.1f}{full - best[ORDERED]:>13.1f}"
    )
    print("(the last figure is what random ids cost, not an index)")


if __name__ == "__main__":
    main()
