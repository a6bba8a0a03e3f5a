"""How many gateway worker processes `nimbus serve` runs when it is not told.

The functions' containers need CPU on the same machine (their proxies, the kernel's socket
work), and every worker beyond the first relays the calls that land on it for functions
another worker owns, a second exchange (docs/performance.md, "Issue 17", item 4). So by
default the gateway takes half the CPUs it may use and leaves the other half to the
containers: one worker on a 2-core machine (where a second one measured a loss), four on
8 cores. "May use" is the process's CPU affinity, capped by a cgroup CPU quota: in a
container limited to 2 CPUs on a 64-core node, the gateway counts 2.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from invoker.share import SINGLE_WORKER_PROVIDERS

MAX_WORKERS = 8
CGROUP_ROOT = Path("/sys/fs/cgroup")


def own_cgroups(listing: str) -> tuple[str | None, str | None]:
    """PURE: this process's cgroup paths from /proc/self/cgroup: the v2 one ("0::/path")
    and the v1 cpu controller's ("4:cpu,cpuacct:/path"), each None where absent."""
    v2 = v1 = None
    for line in listing.splitlines():
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        if number == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _quota(quota: float, period: float) -> float | None:
    return quota / period if quota > 0 and period > 0 else None


def _v2_quota(directory: Path) -> float | None:
    quota, period = (directory / "cpu.max").read_text().split()[:2]  # "max 100000": none
    return None if quota == "max" else _quota(int(quota), int(period))


def _v1_quota(directory: Path) -> float | None:
    quota = int((directory / "cpu.cfs_quota_us").read_text())  # -1: none
    return _quota(quota, int((directory / "cpu.cfs_period_us").read_text()))


def quota_cpus(root: Path = CGROUP_ROOT, listing: str | None = None) -> float | None:
    """The CPUs the tightest cgroup CPU quota over this process allows (its own cgroup and
    every parent up to the root, v2 `cpu.max` or v1 `cpu.cfs_*`), or None: no quota, or
    nothing readable. `listing` is /proc/self/cgroup's text (read when not given)."""
    if listing is None:
        try:
            listing = Path("/proc/self/cgroup").read_text()
        except OSError:
            listing = ""
    v2, v1 = own_cgroups(listing)
    found: list[float] = []
    for base, path, read in ((root, v2, _v2_quota), (root / "cpu", v1, _v1_quota)):
        if path is None:
            continue
        directory = base / path.lstrip("/")
        for level in (directory, *directory.parents):
            if level != base and base not in level.parents:
                break  # above the hierarchy's root
            try:
                quota = read(level)
            except (OSError, ValueError):
                quota = None
            if quota is not None:
                found.append(quota)
    return min(found) if found else None


def usable_cpus(root: Path = CGROUP_ROOT, listing: str | None = None) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0))
    quota = quota_cpus(root, listing)
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def per_cpu(cpus: int) -> int:
    """PURE: `--workers 0`: one worker per usable CPU, at most MAX_WORKERS."""
    return max(1, min(MAX_WORKERS, cpus))


def by_default(cpus: int, vm_provider: str) -> int:
    """PURE: the worker count with neither `--workers` nor $NIMBUS_WORKERS: half the usable
    CPUs (at least one, at most MAX_WORKERS); one with a provider whose remote nodes
    several workers cannot share (`invoker.share.refusal`)."""
    if vm_provider in SINGLE_WORKER_PROVIDERS:
        return 1
    return max(1, min(MAX_WORKERS, cpus // 2))
