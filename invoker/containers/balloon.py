"""Memory ballooning of idle warm containers: when to deflate, to what, and inflating back.

Pure decision logic: no I/O, every time is passed in (`now`, monotonic seconds). The invoker
measures a container's working set (cgroup v2 `memory.current` minus `inactive_file` from
`memory.stat`, as the kubelet does; `working_set_mb` computes it) and asks:

- `decide(view, now, config)` while the container is idle: `Deflate(limit_mb)` once it has
  been idle for the grace period, `Inflate(limit_mb)` if its working set outgrew a deflated
  limit, else `Hold` (with when to ask again);
- `before_call(view)` before a call is dispatched to it: `Inflate(memory_mb)` whenever the
  limit is below the function's `memory_mb`, so a call always runs with its full memory.

The deflated size is the working set plus headroom, max(`headroom_mb`, `headroom_fraction`
of the working set), rounded up to `granularity_mb`, never below `floor_mb` and never above
the function's `memory_mb`. Headroom only protects idle containers: a call never runs
deflated, so too little headroom costs at worst an idle container (the kernel reclaims its
page cache first, and OOM-kills only an idle process), never a call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class BalloonConfig:
    """How the balloon policy sizes idle containers. Defaults and why:

    - `idle_grace_s` 2 s: calls of a busy function usually arrive less than a second apart,
      so a container idle for 2 s is between bursts; deflating sooner would make the next
      call of a burst pay an inflation it did not need.
    - `headroom_mb` 16 MB and `headroom_fraction` 0.10: an idle runtime still allocates a
      little (timers, GC); 10 % covers a heap that breathes, 16 MB covers a tiny process.
    - `granularity_mb` 4 MB: limits are whole multiples of it (whole pages, and a working
      set that moves by a few pages does not change the limit).
    - `floor_mb` 32 MB: no runtime idles in less; a smaller limit risks an OOM kill.
    - `min_saving_mb` 16 MB: a deflation that frees less is not worth its cgroup write.
    """

    idle_grace_s: float = 2.0
    headroom_mb: int = 16
    headroom_fraction: float = 0.10
    granularity_mb: int = 4
    floor_mb: int = 32
    min_saving_mb: int = 16

    def __post_init__(self) -> None:
        if not self.idle_grace_s >= 0:
            raise ValueError("idle_grace_s must be >= 0")
        if self.headroom_mb < 0 or not self.headroom_fraction >= 0:
            raise ValueError("headroom must be >= 0")
        if self.granularity_mb < 1:
            raise ValueError("granularity_mb must be >= 1")
        if self.floor_mb < 1:
            raise ValueError("floor_mb must be >= 1")
        if self.min_saving_mb < 0:
            raise ValueError("min_saving_mb must be >= 0")


@dataclass(frozen=True)
class BalloonView:
    """One container as the balloon policy sees it.

    `memory_mb` is the function's full limit, `limit_mb` the container's current one (equal
    unless deflated), `working_set_mb` the last measurement (None before the first),
    `idle_since` when its last call ended (None while it has calls in flight).
    """

    memory_mb: int
    limit_mb: int
    working_set_mb: float | None
    idle_since: float | None
    in_flight: int = 0

    @property
    def deflated(self) -> bool:
        """True while its limit is below the function's memory."""
        return self.limit_mb < self.memory_mb


@dataclass(frozen=True)
class Deflate:
    """Lower the container's memory limit to `limit_mb`."""

    limit_mb: int


@dataclass(frozen=True)
class Inflate:
    """Raise the container's memory limit to `limit_mb`."""

    limit_mb: int


@dataclass(frozen=True)
class Hold:
    """Leave the limit as it is; ask again at `recheck_at` (None: on the next event)."""

    reason: str
    recheck_at: float | None = None


BalloonDecision = Deflate | Inflate | Hold


def working_set_mb(memory_current_bytes: int, inactive_file_bytes: int = 0) -> float:
    """The working set in MB: usage minus inactive page cache (what the kubelet calls it).

    Inactive file pages are the first the kernel reclaims when the limit is lowered, so they
    need no room in the deflated limit; anonymous memory and active cache do.
    """
    return max(0, memory_current_bytes - inactive_file_bytes) / MB


def target_mb(memory_mb: int, working_set: float, config: BalloonConfig) -> int:
    """The deflated limit for a working set: plus headroom, rounded up, floored, capped."""
    headroom = max(float(config.headroom_mb), working_set * config.headroom_fraction)
    step = config.granularity_mb
    rounded = math.ceil((working_set + headroom) / step) * step
    return min(memory_mb, max(config.floor_mb, rounded))


def decide(view: BalloonView, now: float, config: BalloonConfig) -> BalloonDecision:
    """What to do with an idle container's memory limit now."""
    if view.in_flight > 0 or view.idle_since is None:
        return Hold("busy")
    if view.working_set_mb is None:
        return Hold("working set not measured yet")
    ready_at = view.idle_since + config.idle_grace_s
    if now < ready_at:
        return Hold("within idle grace", recheck_at=ready_at)
    target = target_mb(view.memory_mb, view.working_set_mb, config)
    if target > view.limit_mb:
        # The idle process grew past its deflated limit's headroom: give it room back
        # before the kernel has to OOM-kill it.
        return Inflate(target)
    if view.limit_mb - target >= max(1, config.min_saving_mb):
        return Deflate(target)
    return Hold("already at its working set" if view.deflated else "too little to save")


def before_call(view: BalloonView) -> Inflate | None:
    """The inflation a call needs before it is dispatched (None when already full size)."""
    if view.limit_mb < view.memory_mb:
        return Inflate(view.memory_mb)
    return None


def saving_mb(views: Iterable[BalloonView]) -> int:
    """Memory the deflated containers give back: sum of memory_mb - limit_mb."""
    return sum(max(0, v.memory_mb - v.limit_mb) for v in views)
