"""The per-call meter's figures, over cgroup files stood in for by plain files."""

from __future__ import annotations

from pathlib import Path

from invoker.containers.cgroups import CallMeter


def v1_meter(tmp_path: Path) -> CallMeter:
    """A v1 meter whose peak and CPU files are plain files the test writes as the kernel."""
    (tmp_path / "memory.max_usage_in_bytes").write_text("1\n")
    (tmp_path / "cpuacct.usage").write_text("2500000000\n")
    return CallMeter(
        memory_peak=tmp_path / "memory.max_usage_in_bytes",
        cpu_usage=tmp_path / "cpuacct.usage",
        v2=False,
    )


def test_a_call_gets_its_peak_memory_and_cpu_seconds(tmp_path: Path) -> None:
    meter = v1_meter(tmp_path)
    for peak_mib, cpu_ns in ((64, 3_000_000_000), (12, 3_250_000_000)):
        meter.start()
        assert (tmp_path / "memory.max_usage_in_bytes").read_bytes()[:1] == b"0"  # reset
        (tmp_path / "memory.max_usage_in_bytes").write_text(f"{peak_mib * 2**20}\n")
        start_ns = int((tmp_path / "cpuacct.usage").read_text())
        (tmp_path / "cpuacct.usage").write_text(f"{cpu_ns}\n")
        stats = meter.stop()
        assert stats.peak_memory_mb == peak_mib
        assert stats.cpu_seconds == (cpu_ns - start_ns) / 1e9
    meter.close()


def test_v2_cpu_is_read_from_cpu_stat(tmp_path: Path) -> None:
    (tmp_path / "memory.peak").write_text("4194304\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 1000\nuser_usec 800\n")
    meter = CallMeter(
        memory_peak=tmp_path / "memory.peak", cpu_usage=tmp_path / "cpu.stat", v2=True
    )
    meter.start()
    (tmp_path / "memory.peak").write_text("4194304\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 501000\nuser_usec 800\n")
    stats = meter.stop()
    assert stats.peak_memory_mb == 4 and stats.cpu_seconds == 0.5


def test_missing_files_give_none_and_are_tried_again(tmp_path: Path) -> None:
    meter = CallMeter(
        memory_peak=tmp_path / "memory.max_usage_in_bytes",
        cpu_usage=tmp_path / "cpuacct.usage",
        v2=False,
    )
    meter.start()
    stats = meter.stop()
    assert stats.peak_memory_mb is None and stats.cpu_seconds is None
    v1_meter(tmp_path)  # the files appear
    meter.start()
    (tmp_path / "memory.max_usage_in_bytes").write_text(f"{2**20}\n")
    assert meter.stop().peak_memory_mb == 1


def test_an_unreadable_figure_is_none_never_a_guess(tmp_path: Path) -> None:
    meter = v1_meter(tmp_path)
    meter.start()
    (tmp_path / "memory.max_usage_in_bytes").write_text("garbage\n")
    assert meter.stop().peak_memory_mb is None
