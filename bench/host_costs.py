"""What idle containers cost the host: cgroup v1 memory and CPU, containerd shims, the
Docker daemon, this process's files and threads, and the limits that bound them."""

from __future__ import annotations

import os
import resource
from pathlib import Path

CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")
CGROUP_CPU = Path("/sys/fs/cgroup/cpuacct/docker")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def meminfo(field: str) -> int:
    """A /proc/meminfo field in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == field:
            return int(rest.split()[0]) * 1024
    raise KeyError(field)


def cgroup_memory(container_id: str) -> dict[str, int] | None:
    """usage, rss, cache and working set (usage - inactive_file) in bytes, cgroup v1."""
    base = CGROUP_MEMORY / container_id
    try:
        usage = int((base / "memory.usage_in_bytes").read_text())
        stat = dict(
            (k, int(v))
            for k, v in (line.split() for line in (base / "memory.stat").read_text().splitlines())
        )
    except OSError:
        return None
    return {
        "usage": usage,
        "rss": stat["total_rss"],
        "cache": stat["total_cache"],
        "working": usage - stat["total_inactive_file"],
    }


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process (shared pages split among their users)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def process_table() -> dict[int, str]:
    """pid -> command line of every process we can read."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
            except OSError:
                continue
    return out


def cpu_seconds(container_ids: set[str], shim_pids: list[int]) -> tuple[float, float]:
    """CPU seconds used so far by these containers (cgroup) and by these shim processes."""
    containers, shims = 0.0, 0.0
    for cid in container_ids:
        try:
            containers += int((CGROUP_CPU / cid / "cpuacct.usage").read_text()) / 1e9
        except OSError:
            continue
    for pid in shim_pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        shims += (int(fields[11]) + int(fields[12])) * TICK_S  # utime + stime
    return containers, shims


def shim_pids(ids: set[str], table: dict[int, str]) -> list[int]:
    """The containerd shims of the containers in `ids`."""
    out = []
    for pid, cmd in table.items():
        parts = cmd.split()
        if "containerd-shim" in cmd and "-id" in parts and parts[parts.index("-id") + 1] in ids:
            out.append(pid)
    return out


def shim_pss(ids: set[str], table: dict[int, str]) -> tuple[int, int]:
    """(how many shims found, their total PSS) for the containers in `ids`."""
    found, total = 0, 0
    for pid in shim_pids(ids, table):
        try:
            total += pss_bytes(pid)
            found += 1
        except OSError:
            continue
    return found, total


def daemon_rss(table: dict[int, str]) -> int:
    """Resident memory of dockerd and containerd together, bytes."""
    total = 0
    for pid, cmd in table.items():
        exe = cmd.split(" ", 1)[0].rsplit("/", 1)[-1]
        if exe in ("dockerd", "containerd"):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def own_fds_threads() -> tuple[int, int]:
    """Open files and threads of this process (the gateway, when Nimbus runs in it)."""
    return len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))


def host_summary(pool_memory_mb: int, memory_mb: int) -> str:
    """CPUs, memory, load and the limits that bound how many containers one host holds
    (`memory_mb`: each function's memory limit, which is what the pool counts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    pid_max = Path("/proc/sys/kernel/pid_max").read_text().strip()
    threads_max = Path("/proc/sys/kernel/threads-max").read_text().strip()
    return (
        f"host: {os.cpu_count()} CPUs, {meminfo('MemTotal') / 2**30:.1f} GiB, "
        f"load average {os.getloadavg()[0]:.2f} at start\n"
        f"limits: open files {soft}/{hard} (this process is the gateway), "
        f"pid_max {pid_max}, threads-max {threads_max}\n"
        f"pool_memory_mb={pool_memory_mb}: the pool counts each container's limit "
        f"({memory_mb} MB), not its use; 500 containers need {500 * memory_mb} MB of it"
    )
