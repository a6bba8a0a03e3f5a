"""Store failures callers handle by type: the disk (or database) is full.

A full disk is an operator's problem, not a bug and not the caller's fault: the write was
rolled back, nothing is half-saved, and the same request succeeds once space is freed. The
HTTP layer answers it with a 503 that says so instead of a bare 500.
"""

from __future__ import annotations

import errno
import sqlite3

STORAGE_FULL_MESSAGE = (
    "the platform's storage is full: nothing was saved; try again once space is freed"
)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
PG_DISK_FULL = "53100"  # SQLSTATE disk_full (asyncpg's DiskFullError)


class StoreFull(Exception):
    """A write was refused because the store's disk or database is full (and rolled back)."""


def is_storage_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a full disk, in any store or file write (pure)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _full(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _full(exc: BaseException) -> bool:
    if isinstance(exc, StoreFull):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    return getattr(exc, "sqlstate", None) == PG_DISK_FULL
