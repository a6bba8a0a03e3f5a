"""The in-container runtime proxy as a real subprocess, and an HTTP session bound to it.

The `proxy` fixture runs each test on a unix socket (as in production) and again on TCP;
`unix_proxy` on the socket only.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port

PROXY = Path(__file__).resolve().parents[2] / "runtimes" / "python" / "proxy.py"


@dataclass
class Proxy:
    """One running proxy process and an HTTP session bound to it."""

    process: subprocess.Popen[bytes]
    session: aiohttp.ClientSession
    base: str
    stderr_path: Path
    socket_path: Path | None

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=body) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as resp:
            return resp.status, await resp.json(content_type=None)

    async def init_source(self, source: str, main: str = "main.handler", **extra: Any) -> Any:
        status, payload = await self.post(
            "/init", {"value": {"code": source, "binary": False, "main": main, **extra}}
        )
        assert status == 200, payload
        return payload

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _wait_ready(proc: subprocess.Popen[bytes], connect: Callable[[], None], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"proxy exited with {proc.returncode}: {log.read_text()}")
        try:
            connect()
            return
        except OSError:
            time.sleep(0.01)
    pytest.fail(f"proxy did not listen within 10 s: {log.read_text()}")


def _start(
    tmp_path: Path, transport: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str, Path | None, Any]:
    # No host proxy settings either: urllib in a function would send loopback calls there.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NIMBUS_") and not k.lower().endswith("_proxy")
    }
    env.update(extra_env or {})
    env["TMPDIR"] = str(tmp_path)  # the code dir lands in the test's tmp dir
    log = tmp_path / "proxy.stderr"
    sock_path: Path | None = None
    if transport == "unix":
        # A parent that does not exist yet: the proxy must create it.
        sock_path = tmp_path / "run" / "proxy.sock"
        env["NIMBUS_SOCKET"] = str(sock_path)
        base = "http://proxy"
        connector: Any = aiohttp.UnixConnector(path=str(sock_path), limit=0)

        def connect() -> None:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock_path))

    else:
        port = free_port()
        env["NIMBUS_PORT"] = str(port)
        env["NIMBUS_HOST"] = "127.0.0.1"
        base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=0)

        def connect() -> None:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-S", str(PROXY)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    _wait_ready(proc, connect, log)
    return proc, base, sock_path, connector


@asynccontextmanager
async def running_proxy(
    tmp_path: Path, transport: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Proxy]:
    """A proxy process with a session bound to it, killed on exit."""
    proc, base, sock_path, connector = _start(tmp_path, transport, extra_env)
    session = aiohttp.ClientSession(connector=connector)
    try:
        yield Proxy(proc, session, base, tmp_path / "proxy.stderr", sock_path)
    finally:
        await session.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture(params=["unix", "tcp"])
async def proxy(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Proxy]:
    """A fresh proxy on a unix socket, and again on TCP."""
    async with running_proxy(tmp_path, request.param) as running:
        yield running


@pytest.fixture
async def unix_proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    """A fresh proxy on a unix socket only."""
    async with running_proxy(tmp_path, "unix") as running:
        yield running


def make_zip(files: dict[str, str]) -> str:
    """A base64 zip archive of `files` (name to text), as /init takes it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()
