"""Per-tenant call rates: token buckets, with time passed in (pure, no clock, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class TokenBucket:
    """`burst` tokens at most, refilled at `rate_per_s`; each call takes one."""

    rate_per_s: float
    burst: int
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate_per_s: float, burst: int, now: float) -> TokenBucket:
        """A bucket that can take `burst` calls at once right now."""
        return cls(rate_per_s, burst, float(burst), now)

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last look, up to `burst`."""
        elapsed = max(0.0, now - self.updated)  # a clock that stepped back refills nothing
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        self.updated = max(self.updated, now)

    def take(self, now: float) -> float:
        """Take a token for one call: 0.0 when there was one, else the seconds until one."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


def retuned(bucket: TokenBucket | None, rate_per_s: float, burst: int, now: float) -> TokenBucket:
    """PURE: the bucket to take from under these limits: `bucket` itself if they are its
    own, else a new one keeping what was saved up within the new burst (full if none)."""
    if bucket is not None and (bucket.rate_per_s, bucket.burst) == (rate_per_s, burst):
        return bucket
    tokens = float(burst)
    if bucket is not None:
        bucket.refill(now)
        tokens = min(tokens, bucket.tokens)
    return TokenBucket(rate_per_s, burst, tokens, now)


class Rates(Protocol):
    """Token buckets by key (a tenant, or a tenant's web function): `RateLimiter` in one
    process, `quotas.SharedRates` across `nimbus serve --workers N`."""

    def take(self, tenant: str, rate_per_s: float | None, burst: int | None, now: float) -> float:
        """Admit one call of `tenant`: 0.0, or the seconds to wait (None rate: unlimited)."""
        ...


class RateLimiter:
    """One token bucket per tenant; a tenant's new rate or burst takes effect at once."""

    def __init__(self, max_tenants: int = 100_000) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._max = max_tenants

    def take(self, tenant: str, rate_per_s: float | None, burst: int | None, now: float) -> float:
        """Admit one call of `tenant`: 0.0, or the seconds to wait (None rate: unlimited)."""
        if rate_per_s is None or burst is None:
            self._buckets.pop(tenant, None)
            return 0.0
        bucket = self._buckets.get(tenant)
        if bucket is None and len(self._buckets) >= self._max:
            self._buckets.clear()  # bounded memory; a forgotten bucket starts full
        bucket = self._buckets[tenant] = retuned(bucket, rate_per_s, burst, now)
        return bucket.take(now)
