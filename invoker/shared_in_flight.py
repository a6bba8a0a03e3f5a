"""Tenants' calls in flight across the workers of `nimbus serve --workers N`.

One table every worker maps (MAP_SHARED): a row per tenant, its key (a hash of the
tenant's name, 0 for a row never used) and one count per worker. A worker writes only its
own column, the true count of its own pool, so a worker that is replaced clears its
column when it starts and nothing it left counts any longer; a dead worker's calls hold
capacity only until then. Admitting a call reads the row and writes the count under a
POSIX record lock on the file (the kernel lets go of it if its holder dies), so two
workers never both take a tenant's last place.

The table is a file in the data dir, the one place every worker's settings name: the
supervisor empties it before it forks, and each worker's pool is given its view
(`WorkerInFlight`) when the invoker is assembled. A row whose counts are all zero may be
taken over by another tenant; a tenant that finds none of its rows' probes free (more
tenants with calls in flight at once than the table holds) is counted by its worker alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

from invoker.containers.in_flight import LocalInFlight

ROWS = 16_384
PROBES = 8  # rows tried from a key's home row
CELL = 8  # bytes: an unsigned 64-bit key or count


def tenant_key(tenant: str) -> int:
    """A tenant's row key in a shared table: a 64-bit hash of its name, never 0 (free)."""
    return int.from_bytes(hashlib.blake2b(tenant.encode(), digest_size=8).digest()) or 1


def table_path(data_dir: Path) -> Path:
    """Where the workers of the gateway using `data_dir` share their counts."""
    return data_dir / "workers-in-flight"


class InFlightTable:
    """The shared file: `rows` rows of a key and `workers` counts, mapped MAP_SHARED."""

    def __init__(self, path: Path, workers: int, *, rows: int = ROWS, reset: bool = False) -> None:
        """Open (or make) the table; `reset` empties it (the supervisor, before forking)."""
        self.workers, self.rows = workers, rows
        self._width = 1 + workers  # cells per row
        size = rows * self._width * CELL
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if reset or os.fstat(self._fd).st_size != size:
            os.ftruncate(self._fd, 0)  # zero-filled again: every row free
            os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._view = memoryview(self._map)
        self._cells = self._view.cast("Q")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the table's record lock (a few microseconds)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def row(self, key: int, *, claim: bool) -> int | None:
        """The first cell of `key`'s row; with `claim`, a free row is taken for it if it has
        none. None: no row (and, claiming, none free among its probes). Hold the lock."""
        cells, width = self._cells, self._width
        home = key % self.rows
        free = None
        for probe in range(PROBES):
            base = (home + probe) % self.rows * width
            found = cells[base]
            if found == key:
                return base
            if free is None and (found == 0 or not any(cells[base + 1 : base + width])):
                free = base  # never used, or no calls in flight in any worker
            if found == 0:
                break  # rows are never freed to 0, so no row of `key` lies further
        if not claim or free is None:
            return None
        cells[free] = key
        return free

    def others(self, base: int, worker: int) -> int:
        """The calls in flight of the row's tenant in every worker but `worker`."""
        row = self._cells[base + 1 : base + self._width]
        return sum(row) - row[worker]

    def publish(self, base: int, worker: int, count: int) -> None:
        """Set `worker`'s count in the row."""
        self._cells[base + 1 + worker] = count

    def clear(self, worker: int) -> None:
        """Zero `worker`'s column: a worker starting has no calls in flight."""
        with self.locked():
            for base in range(0, self.rows * self._width, self._width):
                self._cells[base + 1 + worker] = 0

    def close(self) -> None:
        """Unmap the table and close its file."""
        self._cells.release()
        self._view.release()
        self._map.close()
        os.close(self._fd)


class WorkerInFlight:
    """One worker's counts (an `InFlight` for its pool), published in its column and
    checked against every worker's."""

    def __init__(self, table: InFlightTable, worker: int) -> None:
        if not 0 <= worker < table.workers:
            raise ValueError(f"worker {worker} is not one of {table.workers}")
        self._table: InFlightTable | None = table
        self._worker = worker
        self._mine = LocalInFlight()
        table.clear(worker)

    def admit(self, tenant: str, cap: int) -> bool:
        """Count one more call of `tenant` if all the workers have fewer than `cap`."""
        table = self._table
        if table is None:  # stopping: a call that comes now is counted here only
            return self._mine.admit(tenant, cap)
        with table.locked():
            base = table.row(tenant_key(tenant), claim=True)
            others = table.others(base, self._worker) if base is not None else 0
            if not self._mine.admit(tenant, cap - others):
                return False
            if base is not None:
                table.publish(base, self._worker, self._mine.mine(tenant))
        return True

    def done(self, tenant: str) -> None:
        """One call of `tenant` ended here."""
        table = self._table
        self._mine.done(tenant)
        if table is None:
            return
        with table.locked():
            base = table.row(tenant_key(tenant), claim=False)
            if base is not None:
                table.publish(base, self._worker, self._mine.mine(tenant))

    def mine(self, tenant: str) -> int:
        """This worker's calls of `tenant` in flight."""
        return self._mine.mine(tenant)

    def close(self) -> None:
        """Let go of the table (the worker is stopping; its replacement clears its column)."""
        if self._table is not None:
            self._table.close()
            self._table = None


def reset_table(data_dir: Path, workers: int) -> Path:
    """Empty the table for `workers` workers (the supervisor, before it forks them), so
    nothing a previous run left counts; returns its path."""
    path = table_path(data_dir)
    InFlightTable(path, workers, reset=True).close()
    return path


def worker_in_flight(data_dir: Path, worker: str, workers: int) -> WorkerInFlight | None:
    """This process's view of the shared table, or None for a single process (its pool
    counts alone, as it always did)."""
    if not worker or workers < 2:
        return None
    return WorkerInFlight(InFlightTable(table_path(data_dir), workers), int(worker))
