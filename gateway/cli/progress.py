"""A progress line for large uploads and downloads, redrawn in place on a terminal.

`progress_text` is pure; `Progress` draws it on stderr only when stderr is a TTY and the
transfer is large, at most ten times a second, so logs and pipes never fill with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, TextIO

LARGE_BYTES = 1 << 20  # below a MiB a transfer is over before a line would help
REDRAW_S = 0.1


def human_size(size: float) -> str:
    """Bytes as B, KiB, MiB or GiB with one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def progress_text(label: str, done: int, total: int | None, elapsed_s: float) -> str:
    """`label  3.0 MiB / 12.0 MiB  25%  1.5 MiB/s` (no total: bytes and rate only)."""
    rate = f"{human_size(done / elapsed_s)}/s" if elapsed_s > 0 else ""
    if total:
        share = f"{min(100, 100 * done // total):>3}%"
        return f"{label}  {human_size(done)} / {human_size(total)}  {share}  {rate}".rstrip()
    return f"{label}  {human_size(done)}  {rate}".rstrip()


class Progress:
    """Counts bytes and, when shown, redraws one line on `stream`."""

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.drawn_at: float | None = None
        self.shown = stream.isatty() and (total is None or total >= LARGE_BYTES)

    def advance(self, count: int) -> None:
        """`count` more bytes moved."""
        self.done += count
        now = self.clock()
        if self.shown and (self.drawn_at is None or now - self.drawn_at >= REDRAW_S):
            self._draw(now)

    def _draw(self, now: float) -> None:
        text = progress_text(self.label, self.done, self.total, now - self.started)
        self.stream.write(f"\r\x1b[2K{text}")
        self.stream.flush()
        self.drawn_at = now

    def finish(self) -> None:
        """Draw the last figures and end the line (nothing when never shown)."""
        if self.drawn_at is not None:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()


class CountingReader:
    """A file read by the HTTP client as it sends, each block counted by `progress`."""

    def __init__(self, source: IO[bytes], progress: Progress) -> None:
        self.source = source
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        """The next block, counted."""
        block = self.source.read(size)
        self.progress.advance(len(block))
        return block
