"""Keep-alive policies: how long an idle container stays warm, and when to pre-warm one.

Pure decision logic: no I/O, every time is passed in (`now`, monotonic seconds). The
invoker calls `observe(key, now)` when a call of a function arrives and
`decide(key, now)` when that function's container goes idle (its last call ended); the
answer is a `KeepAliveDecision` measured from that moment.

Policies:
- `FixedTTL`: the same keep-alive for everyone (OpenWhisk keeps 10 minutes).
- `HybridHistogram`: Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020): a
  per-function histogram of idle times, pre-warm at its head and keep alive to its tail.
- `ColdStartBudget`: ours. Each function gets a cold-start budget (a fraction of its
  calls). The histogram picks the cheapest window that keeps the function within
  budget (pre-warming periodic functions just in time); while it is still learning, a
  short TTL if the function is within budget, a generous hold only if it is not.

Where they live: the decision and the policy protocol in `keepalive_model.py`, the
per-function idle-time history in `idle_history.py`, the histogram policies in
`history_policies.py`. This module holds `FixedTTL` and the registry by config name, and
re-exports the names the invoker uses, so `from invoker.containers.keepalive import ...`
keeps working.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from invoker.containers.history_policies import ColdStartBudget, HybridHistogram
from invoker.containers.keepalive_model import FunctionKey, KeepAliveDecision, KeepAlivePolicy

__all__ = [
    "POLICIES",
    "ColdStartBudget",
    "FixedTTL",
    "FunctionKey",
    "HybridHistogram",
    "KeepAliveDecision",
    "KeepAlivePolicy",
    "PolicyFactory",
    "keep_alive_policy_by_name",
]

# --- fixed TTL ------------------------------------------------------------------------


class FixedTTL:
    """Keep every idle container for the same time; no history, no pre-warming."""

    name = "fixed"

    def __init__(self, ttl_s: float = 600.0) -> None:
        if math.isnan(ttl_s) or ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        self.ttl_s = ttl_s

    def observe(self, key: FunctionKey, now: float, calls: int = 1) -> None:
        """Fixed TTL learns nothing."""

    def decide(self, key: FunctionKey, now: float) -> KeepAliveDecision:
        """Always the configured TTL."""
        return KeepAliveDecision(self.ttl_s, None, "fixed")

    def forget(self, key: FunctionKey) -> None:
        """Nothing is kept per function."""

    def export_state(self, key: FunctionKey) -> dict[str, Any] | None:
        """Nothing to export."""
        return None

    def restore_state(self, key: FunctionKey, state: Mapping[str, Any]) -> None:
        """Nothing to restore."""


PolicyFactory = Callable[..., KeepAlivePolicy]

POLICIES: Mapping[str, PolicyFactory] = {
    FixedTTL.name: FixedTTL,
    HybridHistogram.name: HybridHistogram,
    ColdStartBudget.name: ColdStartBudget,
}


def keep_alive_policy_by_name(name: str, **kwargs: Any) -> KeepAlivePolicy:
    """Build a policy by its config name ("fixed", "hybrid", "budget") with its options."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown keep-alive policy {name!r}; one of {sorted(POLICIES)}") from None
    return factory(**kwargs)
