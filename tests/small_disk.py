"""A small filesystem for disk-full tests: a tmpfs mounted for the test, and a filler."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the test (root, as `make test` runs)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        # Lazy: a container that outlived its gateway may still hold a bind mount below it.
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int) -> None:
    """Write `path` until its filesystem has about `leave` bytes free (0: none at all)."""
    chunk = b"\0" * 4096
    with path.open("ab", buffering=0) as out:
        while True:
            st = os.statvfs(path)
            if st.f_bavail * st.f_frsize <= leave:
                return
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return
