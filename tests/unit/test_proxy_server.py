"""The in-container runtime proxy as a server: connections, SIGTERM, and the token.

Each test starts runtimes/python/proxy.py with the host interpreter (proxy_process) on a
unix socket (as in production) or on a TCP port, and checks what the invoker relies on.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.unit import proxy_process
from tests.unit.proxy_process import Proxy, running_proxy

proxy = proxy_process.proxy
unix_proxy = proxy_process.unix_proxy


def _raw_exchange(path: Path, data: bytes, responses: int) -> list[bytes]:
    """Send raw bytes on one unix connection and read `responses` HTTP responses."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(data)
        reader = s.makefile("rb")
        bodies = []
        for _ in range(responses):
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            bodies.append(reader.read(length))
        return bodies


async def test_keep_alive_serves_pipelined_requests_on_one_connection(unix_proxy: Proxy) -> None:
    await unix_proxy.init_source("def handler(a):\n    return a['x'] * 2\n")
    requests = b""
    for x in (5, 6, 7):
        body = json.dumps({"value": {"x": x}}).encode()
        requests += b"POST /run HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body),
            body,
        )
    assert unix_proxy.socket_path is not None
    bodies = await asyncio.to_thread(_raw_exchange, unix_proxy.socket_path, requests, 3)
    assert [json.loads(b)["result"] for b in bodies] == [10, 12, 14]


async def test_socket_is_world_connectable(unix_proxy: Proxy) -> None:
    assert unix_proxy.socket_path is not None
    assert unix_proxy.socket_path.stat().st_mode & 0o777 == 0o666


async def test_sigterm_exits_within_a_second_even_mid_run(proxy: Proxy) -> None:
    await proxy.init_source("import time\ndef handler(a):\n    time.sleep(30)\n")
    running = asyncio.ensure_future(proxy.post("/run", {"value": {}}))
    await asyncio.sleep(0.2)  # the handler is now sleeping inside a thread
    started = time.monotonic()
    proxy.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(proxy.process.wait, 5)
    assert time.monotonic() - started < 1.0
    assert code == 0
    with pytest.raises(aiohttp.ClientError):
        await running
    if proxy.socket_path is not None:
        assert not proxy.socket_path.exists()  # it cleans up after itself


async def test_32_concurrent_connections_are_all_served(proxy: Proxy) -> None:
    await proxy.init_source(
        "import time\ndef handler(a):\n    time.sleep(0.05)\n    return a['i']\n"
    )
    # A fresh connection per request: every one of them arrives at the listener at once.
    if proxy.socket_path is not None:
        connector: Any = aiohttp.UnixConnector(
            path=str(proxy.socket_path), limit=0, force_close=True
        )
    else:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> tuple[int, Any]:
            async with session.post(proxy.base + "/run", json={"value": {"i": i}}) as resp:
                return resp.status, await resp.json()

        for _ in range(3):
            answers = await asyncio.gather(*(one(i) for i in range(32)))
            assert [a for a in answers] == [(200, {"result": i, "logs": []}) for i in range(32)]


async def test_a_token_guards_init_and_run_and_stays_out_of_the_function(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, "tcp", {"NIMBUS_PROXY_TOKEN": "s3cret-token"}) as p:
        assert (await p.get("/healthz"))[0] == 200  # readiness needs no secret
        init = {
            "value": {
                "code": "import os\ndef handler(a):\n    return dict(os.environ)\n",
                "binary": False,
                "main": "main.handler",
            }
        }
        status, body = await p.post("/init", init)
        assert status == 401 and "token" in body["error"]
        for wrong in ("Bearer nope", "s3cret-token", "Bearer s3cret-tokenX"):
            async with p.session.post(
                p.base + "/init", json=init, headers={"Authorization": wrong}
            ) as resp:
                assert resp.status == 401
        good = {"Authorization": "Bearer s3cret-token"}
        async with p.session.post(p.base + "/init", json=init, headers=good) as resp:
            assert resp.status == 200
        async with p.session.post(p.base + "/run", json={"value": {}}) as resp:
            assert resp.status == 401
        async with p.session.post(p.base + "/run", json={"value": {}}, headers=good) as resp:
            assert resp.status == 200
            env = (await resp.json())["result"]
        assert "NIMBUS_PROXY_TOKEN" not in env and "s3cret-token" not in env.values()
