"""PURE: which worker of `nimbus serve --workers N` owns a function.

A function's warm containers live in one worker, its owner: the name (every version and
alias of it, every tenant's function of that name) hashes to one worker index. The
gateway relays synchronous calls to the owner (`gateway.workers`); the dispatcher tags
each async call with its owner when accepting it and claims only its own (plus unowned
calls, and those of an owner silent past a grace period: `invoker.store.queue`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def owner_of(function: str, workers: int) -> int:
    """The worker that owns `function`'s containers (any version or alias of it)."""
    name = function.split(":", 1)[0]
    return zlib.crc32(name.encode()) % workers


@dataclass(frozen=True)
class Ownership:
    """This worker's index among `workers`, and which worker owns each function."""

    worker: int
    workers: int

    def owner(self, function: str) -> int:
        """The worker owning `function`'s calls."""
        return owner_of(function, self.workers)


def ownership(worker: str, workers: int) -> Ownership | None:
    """This process's ownership from its settings (`InvokerSettings.worker`, `.workers`):
    None for a single process, whose async calls carry no owner."""
    if not worker or workers < 2:
        return None
    return Ownership(int(worker), workers)
