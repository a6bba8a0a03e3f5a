"""Helpers the latency benchmarks share (run them as `python bench/<name>.py`)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def warm_serve_args(port: int, data_dir: Path) -> list[str]:
    """`nimbus serve`'s arguments for the warm-path benches: real Docker, no stem cells
    (nothing but the measured calls uses the machine)."""
    where = ["--port", str(port), "--data-dir", str(data_dir), "--driver", "docker"]
    return ["serve", *where, "--stem-cells", "0", "--stem-cells", "nodejs:18=0"]


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Return once `nimbus serve` at `url` answers /healthz; exit if it dies or is late."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz") as r:
                json.loads(r.read())
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("nimbus serve did not start") from None
            time.sleep(0.1)


def host_cpu() -> tuple[float, float]:
    """This machine's CPU time so far, summed over its cores: (busy, total) in clock ticks,
    from /proc/stat (idle and iowait are not busy)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]  # user .. steal (guest is in user)
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
