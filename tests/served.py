"""A platform in a subprocess (`nimbus serve`) and a blocking JSON client for it.

Tests that kill the platform (SIGKILL), restart it on the same data dir, or need it to
outlive a fault in its own process use this instead of the in-process `platform` fixture.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway.config import Config
from tests.conftest import ADMIN_KEY, OWNERS, Api, free_port


def request(
    url: str,
    body: object = None,
    method: str = "POST",
    *,
    key: str = ADMIN_KEY,
    timeout: float = 60.0,
) -> tuple[int, Any]:
    """One JSON request; returns (status, decoded body or None). HTTP errors are answers."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    return status, json.loads(raw) if raw else None


def post(url: str, body: object, method: str = "POST") -> tuple[int, dict[str, Any]]:
    """A request that must succeed (2xx); returns (status, body)."""
    status, payload = request(url, body, method)
    assert 200 <= status < 300, (status, payload)
    return status, payload


def get(url: str) -> dict[str, Any]:
    """GET that must answer 200; returns the body."""
    status, payload = request(url, method="GET")
    assert status == 200, (status, payload)
    return dict(payload)


async def wait_for_status(
    api: Api, activation_id: str, statuses: set[str], timeout: float = 30.0
) -> dict[str, Any]:
    """Poll an activation until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        status, act, _ = await api.call("GET", f"/v1/activations/{activation_id}")
        assert status == 200, act
        if act["status"] in statuses:
            return dict(act)
        assert time.monotonic() < deadline, f"still {act['status']}"
        await asyncio.sleep(0.05)


class Served:
    """`nimbus serve` on the real engine in a subprocess, logging to `log`
    (default: `<data_dir>.log` next to the data dir)."""

    def __init__(
        self, data_dir: Path, *args: str, port: int | None = None, log: Path | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or data_dir.parent / f"{data_dir.name}.log"
        self._args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Served:
        """Start it and wait until /healthz answers."""
        OWNERS.add(Config(data_dir=self.data_dir).owner)
        argv = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir), "--driver", "docker", *self._args]
        # One process unless the test asks (`--workers N`): the default follows the machine.
        env = {**os.environ, "NIMBUS_ADMIN_KEY": ADMIN_KEY, "NIMBUS_WORKERS": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"nimbus serve exited; see {self.log}"
            if self.healthy():
                return self
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"nimbus serve did not start; see {self.log}")

    def healthy(self) -> bool:
        """Whether /healthz answers 200 within a second."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def call(self, method: str, path: str, body: object = None, **kw: Any) -> tuple[int, Any]:
        """One request to this platform (see `request`)."""
        return request(self.url + path, body, method, **kw)

    def kill(self) -> None:
        """SIGKILL: the platform dies mid-work, as in a crash."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait for a clean stop (SIGKILL after `timeout`)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
