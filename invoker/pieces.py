"""CPU work in pieces, for threads that share the GIL with an event loop.

A thread does not free the event loop from one long C call: base64, `json` and regular
expressions hold the GIL for all of it. Between short calls the loop still waits up to the
interpreter's switch interval (5 ms) each time it wants the GIL back, and a warm call wants
it a dozen times. Work cut in pieces of about a millisecond that hands the GIL over after
each piece costs the loop about a millisecond at a time instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator


def spans(start: int, end: int, step: int) -> Iterator[tuple[int, int]]:
    """(at, until) covering [start, end) in steps, handing the GIL over between them."""
    for at in range(start, end, step):
        if at > start:
            time.sleep(0)  # lets a thread waiting for the GIL (the event loop) take it now
        yield at, min(at + step, end)
