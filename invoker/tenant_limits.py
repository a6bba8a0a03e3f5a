"""Per-tenant limits an admin sets, and the platform defaults that fill the gaps.

Pure values: the store keeps a tenant's `TenantLimits` (None = the platform default), the
gateway resolves them against `LimitDefaults` into the numbers it enforces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_BACKLOG = 1000
"""Async calls a tenant may have queued or running at once, unless an admin says otherwise."""

LIMIT_FIELDS = ("concurrency", "rate_per_s", "burst", "backlog")


@dataclass(frozen=True)
class TenantLimits:
    """What an admin set for one tenant; None means the platform default."""

    concurrency: int | None = None  # calls in flight at once (sync + async) in one gateway
    rate_per_s: float | None = None  # invokes per second (token bucket refill)
    burst: int | None = None  # invokes at once above the rate (token bucket size)
    backlog: int | None = None  # async calls queued or running

    def to_json(self) -> dict[str, Any]:
        """The four fields, None shown as null."""
        return {
            "concurrency": self.concurrency,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "backlog": self.backlog,
        }


@dataclass(frozen=True)
class LimitDefaults:
    """The platform's values for tenants without their own."""

    concurrency: int = 100
    rate_per_s: float | None = None  # None: no rate limit
    burst: int | None = None  # None: one second's worth of the rate
    backlog: int = DEFAULT_BACKLOG


@dataclass(frozen=True)
class EffectiveLimits:
    """The numbers enforced for one tenant."""

    concurrency: int
    rate_per_s: float | None  # None: unlimited
    burst: int | None  # None exactly when the rate is unlimited
    backlog: int

    def to_json(self) -> dict[str, Any]:
        """As the API shows them."""
        return {
            "concurrency": self.concurrency,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "backlog": self.backlog,
        }


def resolve(limits: TenantLimits | None, defaults: LimitDefaults) -> EffectiveLimits:
    """A tenant's own limits where set, the platform's elsewhere."""
    own = limits or TenantLimits()
    rate = own.rate_per_s if own.rate_per_s is not None else defaults.rate_per_s
    burst = own.burst if own.burst is not None else defaults.burst
    if rate is None:
        burst = None  # no rate limit: nothing to burst above
    elif burst is None:
        burst = max(1, math.ceil(rate))  # one second's worth, at least one call
    return EffectiveLimits(
        concurrency=own.concurrency if own.concurrency is not None else defaults.concurrency,
        rate_per_s=rate,
        burst=burst,
        backlog=own.backlog if own.backlog is not None else defaults.backlog,
    )
