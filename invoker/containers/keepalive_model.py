"""Keep-alive model: the decision a policy makes and the protocol every policy follows.

Pure data and typing, no I/O. The policies live in `keepalive.py` (the fixed TTL and the
registry by name), `idle_history.py` and `history_policies.py`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

FunctionKey = Hashable
"""Whatever the invoker uses to tell functions apart, e.g. `FunctionSpec.key`."""

HOUR_S = 3600.0


@dataclass(frozen=True)
class KeepAliveDecision:
    """What to do with a function's container from the moment it goes idle.

    Times are seconds after that moment. `prewarm_after_s=None`: keep the container
    warm until `keep_alive_s`, then remove it. Otherwise remove it now, start a fresh one
    at `prewarm_after_s` and keep that one until `keep_alive_s`. `keep_alive_s=0`: remove
    it now. `keep_alive_s` may be `math.inf` (never expire).
    """

    keep_alive_s: float
    prewarm_after_s: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if math.isnan(self.keep_alive_s) or self.keep_alive_s < 0:
            raise ValueError(f"keep_alive_s must be >= 0, got {self.keep_alive_s}")
        if self.prewarm_after_s is not None and not (0 < self.prewarm_after_s < self.keep_alive_s):
            raise ValueError(
                f"prewarm_after_s must lie in (0, keep_alive_s={self.keep_alive_s}),"
                f" got {self.prewarm_after_s}"
            )

    @property
    def warm_from_s(self) -> float:
        """When, after going idle, a warm container is (again) available."""
        return self.prewarm_after_s if self.prewarm_after_s is not None else 0.0

    def warm_at(self, idle_s: float) -> bool:
        """Whether a call arriving `idle_s` after the container went idle finds it warm."""
        return self.warm_from_s <= idle_s < self.keep_alive_s


class KeepAlivePolicy(Protocol):
    """Decides, per function, from its history and `now`, how long idle containers live."""

    name: str

    def observe(self, key: FunctionKey, now: float, calls: int = 1) -> None:
        """`calls` calls of the function arrived at `now`."""
        ...

    def decide(self, key: FunctionKey, now: float) -> KeepAliveDecision:
        """The function's container went idle at `now`: how long to keep it, when to pre-warm."""
        ...

    def forget(self, key: FunctionKey) -> None:
        """Drop what is known about a function (deleted, or not called for a long time)."""
        ...

    def export_state(self, key: FunctionKey) -> dict[str, Any] | None:
        """A small JSON-able snapshot of the function's history, or None if there is none."""
        ...

    def restore_state(self, key: FunctionKey, state: Mapping[str, Any]) -> None:
        """Load a snapshot made by `export_state` (of a policy with the same bin settings)."""
        ...
