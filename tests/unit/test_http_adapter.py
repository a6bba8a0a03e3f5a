"""The in-container pieces of functions' own images, as real subprocesses on a unix
socket: the http adapter (opens its socket only once the image's port accepts, forwards
/run as `POST /`, bounds and times the answer) and the proxy's baked-in mode (an /init
without code imports the function the image carries)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port

RUNTIME = Path(__file__).resolve().parents[2] / "runtimes" / "python"


class Server(BaseHTTPRequestHandler):
    """A plain HTTP function: echoes the event; `status`, `sleep`, `text`, `big` shape it."""

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(event.get("sleep", 0))
        body = json.dumps({"got": event}).encode()
        if "text" in event:
            body = event["text"].encode()
        if "big" in event:
            body = b"x" * event["big"]
        self.send_response(event.get("status", 200))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def launch(script: str, env: dict[str, str], socket: Path) -> subprocess.Popen[bytes]:
    """Run a runtime script with `env`, listening at `socket`."""
    return subprocess.Popen(
        [sys.executable, "-S", "-B", str(RUNTIME / script)],
        env={**os.environ, "NIMBUS_SOCKET": str(socket), **env},
        stderr=subprocess.PIPE,
    )


def wait_for_socket(proc: subprocess.Popen[bytes], socket: Path) -> None:
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "no socket"
        time.sleep(0.01)


@pytest.fixture
def port() -> Iterator[int]:
    """A port the image's server will listen on (started by `serve`)."""
    yield free_port()


def serve(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.UnixConnector(path=str(tmp_path / "p.sock"))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def post(session: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with session.post(f"http://proxy{path}", json=body) as resp:
        return resp.status, await resp.json()


async def test_the_adapter_waits_for_the_port_then_forwards_run(
    tmp_path: Path, port: int, session: aiohttp.ClientSession
) -> None:
    socket = tmp_path / "p.sock"
    env = {"NIMBUS_TARGET_PORT": str(port), "NIMBUS_MAX_REPLY": "1000"}
    proc = launch("http_adapter.py", env, socket)
    try:
        await asyncio.sleep(0.3)
        assert not socket.exists()  # nothing listens on the port yet: not ready
        server = serve(port)
        wait_for_socket(proc, socket)
        assert (await post(session, "/run", {"value": {}}))[0] == 403  # before /init
        assert await post(session, "/init", {"value": {"code": "", "main": ""}}) == (
            200,
            {"ok": True},
        )
        assert (await post(session, "/init", {"value": {}}))[0] == 403  # once only
        status, body = await post(session, "/run", {"value": {"n": 1}})
        assert (status, body) == (200, {"result": {"got": {"n": 1}}, "logs": []})
        status, body = await post(session, "/run", {"value": {"text": "plain words"}})
        assert body["result"] == "plain words"
        status, body = await post(session, "/run", {"value": {"status": 503}})
        assert status == 502 and "HTTP 503" in body["error"]
        status, body = await post(session, "/run", {"value": {"big": 5000}})
        assert status == 502 and "more than 1000 bytes" in body["error"]
        deadline_ms = (time.time() + 0.3) * 1000
        status, body = await post(session, "/run", {"value": {"sleep": 2}, "deadline": deadline_ms})
        assert status == 502 and "did not answer" in body["error"]
        server.shutdown()
    finally:
        proc.terminate()
        proc.wait(5)


async def test_the_proxy_imports_a_baked_in_function_when_no_code_comes(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    function = tmp_path / "function"
    function.mkdir()
    (function / "main.py").write_text(
        "import os\n\ndef handler(event):\n    print('baked')\n"
        "    return {'n': event['n'], 'env': os.environ.get('GREETING')}\n"
    )
    proc = launch("proxy.py", {"NIMBUS_FUNCTION_DIR": str(function)}, tmp_path / "p.sock")
    wait_for_socket(proc, tmp_path / "p.sock")
    try:
        init = {"value": {"code": "", "main": "main.handler", "env": {"GREETING": "hi"}}}
        assert await post(session, "/init", init) == (200, {"ok": True})
        status, body = await post(session, "/run", {"value": {"n": 3}})
        assert status == 200, body
        assert body == {"result": {"n": 3, "env": "hi"}, "logs": ["baked"]}
    finally:
        proc.terminate()
        proc.wait(5)
    assert function.is_dir() and (function / "main.py").exists()  # never cleaned up as code
