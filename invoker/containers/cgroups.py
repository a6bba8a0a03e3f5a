"""Per-call resource use read from a container's cgroup files (v1 or v2).

Reads and writes here touch sysfs, which answers in microseconds without blocking, so
they run inline: a thread hop would cost more than the read. The files stay open for the
container's life (pread/pwrite at offset 0): opening them on every call was a quarter of
a warm call's gateway time. Where a file is missing or not writable the figure is None,
never an estimate.
"""

from __future__ import annotations

import enum
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from invoker.containers.balloon import MB, working_set_mb
from invoker.drivers.base import ContainerStats

CGROUP_ROOT = Path("/sys/fs/cgroup")


class LimitWrite(enum.Enum):
    """How writing a container's memory limit went."""

    DONE = "done"
    REFUSED = "refused"  # the kernel could not reclaim down to it: the limit is unchanged
    UNSUPPORTED = "unsupported"  # no writable limit file here: ask the engine instead


@dataclass(frozen=True)
class MemoryFiles:
    """The memory controller's files of one container: its limit, its use, its figures.

    v1: memory.limit_in_bytes, memory.usage_in_bytes, memory.stat (total_inactive_file);
    v2: memory.max, memory.current, memory.stat (inactive_file). Only the limit is written;
    on v1 Docker also sets memory.memsw.limit_in_bytes to the full size, which stays: a
    limit may go below it, and inflating never goes above the function's memory_mb.
    """

    limit: Path
    usage: Path
    stat: Path
    inactive_key: bytes

    @classmethod
    def v1(cls, directory: Path) -> MemoryFiles:
        """The files of a v1 memory cgroup directory."""
        return cls(
            directory / "memory.limit_in_bytes",
            directory / "memory.usage_in_bytes",
            directory / "memory.stat",
            b"total_inactive_file",
        )

    @classmethod
    def v2(cls, directory: Path) -> MemoryFiles:
        """The files of a v2 cgroup directory."""
        return cls(
            directory / "memory.max",
            directory / "memory.current",
            directory / "memory.stat",
            b"inactive_file",
        )


@dataclass
class CallMeter:
    """Measures one call: `start()` before /run, `stop()` after; freezes an idle container.

    cgroup v1: the memory high-water mark is reset to the current use at `start`, so the
    peak read at `stop` is this call's. With v2 the peak can be reset only on newer kernels;
    where the reset fails the peak is reported as None rather than the container's lifetime
    peak. With concurrency > 1 the figures cover the container during the call window.
    """

    memory_peak: Path
    cpu_usage: Path
    v2: bool
    freezer: Path | None = None
    """freezer.state (v1) or cgroup.freeze (v2): an idle container's processes are frozen,
    so nothing a call left behind (threads, forks) runs, or is paid for, between calls."""
    memory: MemoryFiles | None = None
    """The memory limit and use, for ballooning (None where the controller is not found)."""
    frozen: bool = False
    """What the last freezer write through this meter left: thawing a container that is
    not frozen (a call within the freeze grace of the one before) writes nothing. Drivers
    keep one meter per container for its life, so this is the container's state."""
    _cpu0: float | None = None
    _reset: bool = False
    _fds: dict[Path, int] = field(default_factory=dict)
    _hot: tuple[int | None, int | None] | None = None
    """The peak and CPU files' descriptors, resolved once: `start`/`stop` run on every call."""

    def _fd(self, path: Path) -> int | None:
        fd = self._fds.get(path)
        if fd is None:
            try:
                writable = path == self.memory_peak or (
                    self.memory is not None and path == self.memory.limit
                )
                fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
            except OSError:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    return None
            self._fds[path] = fd
        return fd

    def _read(self, path: Path) -> bytes | None:
        return _pread(self._fd(path))

    def _read_number(self, path: Path) -> int | None:
        return _number(self._read(path))

    def _hot_fds(self) -> tuple[int | None, int | None]:
        hot = self._hot
        if hot is None:
            hot = (self._fd(self.memory_peak), self._fd(self.cpu_usage))
            if None not in hot:  # a file that failed to open is tried again next call
                self._hot = hot
        return hot

    def start(self) -> None:
        """Reset the memory high-water mark and read the CPU counter."""
        peak_fd, cpu_fd = self._hot_fds()
        try:
            if peak_fd is None:
                raise OSError("no memory file")
            os.pwrite(peak_fd, b"reset" if self.v2 else b"0", 0)
            self._reset = True
        except OSError:
            self._reset = False
        self._cpu0 = self._cpu_at(cpu_fd)

    def freeze(self) -> bool:
        """Stop every process of the container until `thaw`; False where it cannot."""
        return self.frozen or self._write_freezer(b"1" if self.v2 else b"FROZEN", True)

    def thaw(self) -> bool:
        """Let the container's processes run again (no write when it is not frozen)."""
        return not self.frozen or self._write_freezer(b"0" if self.v2 else b"THAWED", False)

    def _write_freezer(self, value: bytes, frozen: bool) -> bool:
        if self.freezer is None:
            return False
        fd = self._fds.get(self.freezer)
        try:
            if fd is None:
                fd = self._fds[self.freezer] = os.open(self.freezer, os.O_WRONLY)
            os.pwrite(fd, value, 0)
        except OSError:
            return False
        self.frozen = frozen
        return True

    def working_set_mb(self) -> float | None:
        """Memory in use minus inactive page cache, in MB (None where unreadable)."""
        if self.memory is None:
            return None
        usage = self._read_number(self.memory.usage)
        stat = self._read(self.memory.stat)
        if usage is None or stat is None:
            return None
        inactive = 0
        for line in stat.splitlines():
            key, _, value = line.partition(b" ")
            if key == self.memory.inactive_key:
                inactive = int(value)
                break
        return working_set_mb(usage, inactive)

    def set_memory_limit(self, limit_mb: int) -> LimitWrite:
        """Write the container's memory limit: one pwrite on a file kept open.

        Lowering it makes the kernel reclaim page cache first; on v1 it refuses (EBUSY)
        when the container's memory cannot be brought under the new limit.
        """
        if self.memory is None:
            return LimitWrite.UNSUPPORTED
        fd = self._fds.get(self.memory.limit)
        if fd is None:
            try:
                fd = self._fds[self.memory.limit] = os.open(self.memory.limit, os.O_RDWR)
            except OSError:
                return LimitWrite.UNSUPPORTED
        try:
            os.pwrite(fd, str(limit_mb * MB).encode(), 0)
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.EINVAL):
                return LimitWrite.REFUSED
            return LimitWrite.UNSUPPORTED
        return LimitWrite.DONE

    def memory_limit_mb(self) -> float | None:
        """The container's memory limit now, in MB (None where unreadable or unlimited)."""
        if self.memory is None:
            return None
        raw = self._read(self.memory.limit)
        try:
            return None if raw is None else int(raw.split()[0]) / MB
        except (ValueError, IndexError):
            return None

    def _cpu(self) -> float | None:
        return self._cpu_at(self._hot_fds()[1])

    def _cpu_at(self, fd: int | None) -> float | None:
        """CPU seconds the container used so far, from the CPU file open at `fd`."""
        raw = _pread(fd)
        if raw is None:
            return None
        if self.v2:
            for line in raw.decode().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            return None
        number = _number(raw)
        return None if number is None else number / 1e9

    def close(self) -> None:
        """Close the files (the container is gone)."""
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        self._hot = None

    def snapshot(self) -> ContainerStats:
        """The high-water mark since the last `start` (or container start) and total CPU."""
        peak = self._read_number(self.memory_peak)
        cpu = self._cpu()
        return ContainerStats(
            peak_memory_mb=None if peak is None else round(peak / 2**20, 3),
            cpu_seconds=None if cpu is None else round(cpu, 6),
        )

    def stop(self) -> ContainerStats:
        """Peak memory (MiB) and CPU seconds since `start`."""
        peak_fd, cpu_fd = self._hot_fds()
        peak = _number(_pread(peak_fd)) if self._reset else None
        cpu1 = self._cpu_at(cpu_fd)
        cpu = None if cpu1 is None or self._cpu0 is None else max(0.0, cpu1 - self._cpu0)
        return ContainerStats(
            peak_memory_mb=None if peak is None else round(peak / 2**20, 3),
            cpu_seconds=None if cpu is None else round(cpu, 6),
        )


def _pread(fd: int | None) -> bytes | None:
    """The file open at `fd`, from its start (None where there is none or it fails)."""
    if fd is None:
        return None
    try:
        return os.pread(fd, 4096, 0)
    except OSError:
        return None


def _number(raw: bytes | None) -> int | None:
    """The first number of a cgroup file's contents (None where there is none)."""
    if raw is None:
        return None
    try:
        return int(raw)  # the usual single number and newline
    except ValueError:
        pass
    try:
        return int(raw.split()[0])
    except (ValueError, IndexError):
        return None


def docker_meter(container_id: str, parent: str | None) -> CallMeter | None:
    """A meter for a Docker container under the cgroupfs driver, or None where none is found."""
    parent = (parent or "docker").strip("/")
    v1_memory = CGROUP_ROOT / "memory" / parent / container_id
    if v1_memory.is_dir():
        freezer = CGROUP_ROOT / "freezer" / parent / container_id / "freezer.state"
        return CallMeter(
            memory_peak=v1_memory / "memory.max_usage_in_bytes",
            cpu_usage=CGROUP_ROOT / "cpuacct" / parent / container_id / "cpuacct.usage",
            v2=False,
            freezer=freezer if freezer.exists() else None,
            memory=MemoryFiles.v1(v1_memory),
        )
    for v2 in _v2_dirs(container_id, parent):
        if (v2 / "memory.peak").exists():
            freeze = v2 / "cgroup.freeze"
            return CallMeter(
                memory_peak=v2 / "memory.peak",
                cpu_usage=v2 / "cpu.stat",
                v2=True,
                freezer=freeze if freeze.exists() else None,
                memory=MemoryFiles.v2(v2),
            )
    return None


def _v2_dirs(container_id: str, parent: str) -> tuple[Path, Path]:
    return (
        CGROUP_ROOT / parent / container_id,
        CGROUP_ROOT / f"system.slice/docker-{container_id}.scope",
    )


def thaw_container(container_id: str, parent: str | None) -> None:
    """Thaw a Docker container that may be frozen (before it is killed); quiet on failure."""
    parent = (parent or "docker").strip("/")
    candidates = [
        (CGROUP_ROOT / "freezer" / parent / container_id / "freezer.state", b"THAWED"),
        *((d / "cgroup.freeze", b"0") for d in _v2_dirs(container_id, parent)),
    ]
    for path, value in candidates:
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError:
            continue
        try:
            os.pwrite(fd, value, 0)
        except OSError:
            pass
        finally:
            os.close(fd)
        return
