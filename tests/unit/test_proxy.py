"""The in-container runtime proxy, run as a real subprocess and spoken to over HTTP.

Each test starts runtimes/python/proxy.py with the host interpreter on a unix socket
(as in production) or on a TCP port, and checks what the invoker relies on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import io
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

PROXY = Path(__file__).resolve().parents[2] / "runtimes" / "python" / "proxy.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


ONE_ARG = """
def handler(args):
    print("adding", len(args["numbers"]), "numbers")
    return {"sum": sum(args["numbers"]), "greeting": "hello " + args["name"]}
"""

TWO_ARGS = """
def handler(event, context):
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
    }
"""


async def test_healthz_answers(proxy: Proxy) -> None:
    assert await proxy.get("/healthz") == (200, {"ok": True})


async def test_one_argument_handler_gets_the_args(proxy: Proxy) -> None:
    await proxy.init_source(ONE_ARG)
    numbers = [3, 14, 15, 92, 65]
    status, payload = await proxy.post(
        "/run", {"value": {"numbers": numbers, "name": "ada"}, "activation_id": "a1"}
    )
    assert status == 200, payload
    assert payload["result"] == {"sum": sum(numbers), "greeting": "hello ada"}
    assert payload["logs"] == [f"adding {len(numbers)} numbers"]


async def test_two_argument_handler_gets_event_and_context(proxy: Proxy) -> None:
    await proxy.init_source(TWO_ARGS)
    activation = uuid.uuid4().hex
    deadline = time.time() * 1000 + 30_000
    status, payload = await proxy.post(
        "/run",
        {
            "value": {"k": [1, 2]},
            "activation_id": activation,
            "deadline": deadline,
            "function_name": "resize",
            "memory_limit_mb": 256,
        },
    )
    assert status == 200, payload
    result = payload["result"]
    assert result["event"] == {"k": [1, 2]}
    assert result["request_id"] == activation
    assert result["function"] == "resize"
    assert result["memory"] == 256
    assert 25_000 < result["remaining"] <= 30_000


async def test_env_is_applied_before_the_import(unix_proxy: Proxy) -> None:
    source = (
        "import os\nAT_IMPORT = os.environ['GREETING']\ndef handler(a):\n    return AT_IMPORT\n"
    )
    await unix_proxy.init_source(source, env={"GREETING": "bonjour"})
    status, payload = await unix_proxy.post("/run", {"value": {}})
    assert (status, payload["result"]) == (200, "bonjour")


async def test_zip_with_package_and_vendored_module(proxy: Proxy) -> None:
    code = make_zip(
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": (
                "import vendored_lib\nfrom vendpkg.inner import triple\n"
                "def handler(args):\n"
                "    return {'shout': vendored_lib.shout(args['w']), 't': triple(args['n'])}\n"
            ),
            "vendored_lib.py": "def shout(word):\n    return word.upper() + '!'\n",
            "vendpkg/__init__.py": "",
            "vendpkg/inner.py": "def triple(n):\n    return 3 * n\n",
        }
    )
    status, payload = await proxy.post(
        "/init", {"value": {"code": code, "binary": True, "main": "pkg.mod.handler"}}
    )
    assert status == 200, payload
    status, payload = await proxy.post("/run", {"value": {"w": "quiet", "n": 7}})
    assert status == 200, payload
    assert payload["result"] == {"shout": "QUIET!", "t": 21}


async def test_zip_that_is_not_a_zip_is_refused(unix_proxy: Proxy) -> None:
    garbage = base64.b64encode(b"this is not a zip archive").decode()
    status, payload = await unix_proxy.post(
        "/init", {"value": {"code": garbage, "binary": True, "main": "main.handler"}}
    )
    assert status == 400
    assert "zip" in payload["error"]


async def test_logs_stay_with_their_activation_under_16_concurrent_runs(proxy: Proxy) -> None:
    source = (
        "import sys, time\n"
        "def handler(args):\n"
        "    for i in range(5):\n"
        "        print('out', args['id'], i)\n"
        "        print('err', args['id'], i, file=sys.stderr)\n"
        "        time.sleep(0.01)\n"
        "    return args['id']\n"
    )
    await proxy.init_source(source)
    ids = [uuid.uuid4().hex[:8] for _ in range(16)]
    started = time.monotonic()
    answers = await asyncio.gather(*(proxy.post("/run", {"value": {"id": i}}) for i in ids))
    elapsed = time.monotonic() - started
    for activation, (status, payload) in zip(ids, answers, strict=True):
        assert status == 200, payload
        assert payload["result"] == activation
        expected = []
        for i in range(5):
            expected += [f"out {activation} {i}", f"err {activation} {i}"]
        assert payload["logs"] == expected
    # 16 x 50 ms run one after another would take 0.8 s: the runs really overlapped.
    assert elapsed < 0.6, elapsed


async def test_handler_exception_is_a_502_with_message_logs_and_traceback(proxy: Proxy) -> None:
    source = (
        "def check(n):\n"
        "    raise ValueError(f'bad input {n}')\n"
        "def handler(args):\n"
        "    print('about to check', args['n'])\n"
        "    check(args['n'])\n"
    )
    await proxy.init_source(source)
    status, payload = await proxy.post("/run", {"value": {"n": 7}})
    assert status == 502
    assert payload["error"] == "ValueError: bad input 7"
    assert payload["logs"] == ["about to check 7"]
    assert "in check" in payload["traceback"]
    assert "proxy.py" not in payload["traceback"]  # the user's frames, not ours
    # The proxy survives its function's failure.
    status, payload = await proxy.post("/run", {"value": {"n": 8}})
    assert (status, payload["error"]) == (502, "ValueError: bad input 8")


async def test_sys_exit_in_handler_is_an_error_not_an_exit(unix_proxy: Proxy) -> None:
    await unix_proxy.init_source("import sys\ndef handler(a):\n    sys.exit(3)\n")
    status, payload = await unix_proxy.post("/run", {"value": {}})
    assert status == 502
    assert payload["error"].startswith("SystemExit")
    assert unix_proxy.process.poll() is None


async def test_result_that_is_not_json_is_a_clear_502(unix_proxy: Proxy) -> None:
    await unix_proxy.init_source("def handler(a):\n    print('made a set')\n    return {1, 2}\n")
    status, payload = await unix_proxy.post("/run", {"value": {}})
    assert status == 502
    assert "not JSON-serialisable" in payload["error"]
    assert "set" in payload["error"]
    assert payload["logs"] == ["made a set"]


async def test_missing_handler_at_init_is_a_502_naming_it(proxy: Proxy) -> None:
    status, payload = await proxy.post(
        "/init", {"value": {"code": ONE_ARG, "binary": False, "main": "main.nope"}}
    )
    assert status == 502
    assert "main.nope" in payload["error"]
    assert "has no attribute 'nope'" in payload["error"]


async def test_code_that_does_not_import_is_a_502_naming_the_problem(unix_proxy: Proxy) -> None:
    source = "import definitely_not_installed_pkg\ndef handler(a):\n    return 1\n"
    status, payload = await unix_proxy.post(
        "/init", {"value": {"code": source, "binary": False, "main": "main.handler"}}
    )
    assert status == 502
    assert "definitely_not_installed_pkg" in payload["error"]
    assert "ModuleNotFoundError" in payload["error"]


async def test_run_before_init_and_second_init_are_refused(proxy: Proxy) -> None:
    status, payload = await proxy.post("/run", {"value": {}})
    assert status == 403
    assert "init" in payload["error"]
    await proxy.init_source(ONE_ARG)
    status, payload = await proxy.post(
        "/init", {"value": {"code": TWO_ARGS, "binary": False, "main": "main.handler"}}
    )
    assert status == 403
    # The first code is still the one that runs.
    status, payload = await proxy.post("/run", {"value": {"numbers": [1], "name": "x"}})
    assert payload["result"]["sum"] == 1


async def test_malformed_json_is_a_400(unix_proxy: Proxy) -> None:
    async with unix_proxy.session.post(unix_proxy.base + "/run", data=b"{nope") as resp:
        assert resp.status == 400
        assert "JSON" in (await resp.json())["error"]


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


# ------------------------------------------------- the Nimbus API inside the function


@dataclass
class ApiServer:
    """A stand-in for the gateway's API on a unix socket; remembers every request."""

    socket_path: Path
    seen: list[dict[str, Any]]


@pytest.fixture
async def api_server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    """GET answers with the method, path and Authorization it got; PUT echoes the body."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        echo = {
            "method": request.method,
            "path": request.path,
            "authorization": request.headers.get("Authorization"),
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        seen.append(echo)
        if request.method == "PUT":
            return web.Response(body=body, content_type="application/octet-stream")
        return web.json_response(echo)

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "api" / "api.sock"
    path.parent.mkdir()
    await web.UnixSite(runner, str(path)).start()
    try:
        yield ApiServer(path, seen)
    finally:
        await runner.cleanup()


@pytest.fixture(params=["unix", "tcp"])
async def api_proxy(
    request: pytest.FixtureRequest, tmp_path: Path, api_server: ApiServer
) -> AsyncIterator[Proxy]:
    """A proxy whose container has the API socket bind-mounted at $NIMBUS_API_SOCKET."""
    env = {"NIMBUS_API_SOCKET": str(api_server.socket_path)}
    async with running_proxy(tmp_path, request.param, env) as running:
        yield running


WHOAMI = """
import json, os, urllib.request

URL_AT_IMPORT = os.environ.get("NIMBUS_API_URL")

def handler(event, context):
    request = urllib.request.Request(
        os.environ["NIMBUS_API_URL"] + "/v1/whoami",
        headers={"Authorization": "Bearer " + os.environ["NIMBUS_API_TOKEN"]},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        echo = json.load(response)
    return {
        "echo": echo,
        "url_at_import": URL_AT_IMPORT,
        "url": os.environ["NIMBUS_API_URL"],
        "context_url": context.api_url,
        "context_token": context.api_token,
    }
"""


async def test_function_calls_the_api_at_nimbus_api_url_with_its_token(
    api_proxy: Proxy, api_server: ApiServer
) -> None:
    await api_proxy.init_source(WHOAMI)
    tokens = [f"tok-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"]
    for token in tokens:
        status, payload = await api_proxy.post("/run", {"value": {}, "api_token": token})
        assert status == 200, payload
        result = payload["result"]
        assert result["echo"]["path"] == "/v1/whoami"
        assert result["echo"]["authorization"] == f"Bearer {token}"
        assert result["context_token"] == token
        url = result["url"]
        host, _, port = url.removeprefix("http://").partition(":")
        assert (host, port.isdigit()) == ("127.0.0.1", True), url
        assert int(port) > 0
        # Module-level code saw the same URL, and so does the context.
        assert result["url_at_import"] == url
        assert result["context_url"] == url
    assert [s["authorization"] for s in api_server.seen] == [f"Bearer {t}" for t in tokens]


PUT_MEGABYTE = """
import hashlib, os, random, urllib.request

def handler(event):
    data = random.Random(event["seed"]).randbytes(event["size"])
    request = urllib.request.Request(
        os.environ["NIMBUS_API_URL"] + "/v1/buckets/b/objects/big.bin",
        data=data,
        method="PUT",
        headers={"Authorization": "Bearer " + os.environ["NIMBUS_API_TOKEN"]},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        back = response.read()
    return {
        "sent": hashlib.sha256(data).hexdigest(),
        "back": hashlib.sha256(back).hexdigest(),
        "back_size": len(back),
    }
"""


async def test_a_megabyte_goes_through_the_forwarder_and_back_intact(
    api_proxy: Proxy, api_server: ApiServer
) -> None:
    await api_proxy.init_source(PUT_MEGABYTE)
    size = 1024 * 1024 + 17  # not a multiple of any buffer size
    seed = uuid.uuid4().int
    expected = hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()
    status, payload = await api_proxy.post(
        "/run", {"value": {"seed": seed, "size": size}, "api_token": "t"}
    )
    assert status == 200, payload
    assert payload["result"] == {"sent": expected, "back": expected, "back_size": size}
    received = api_server.seen[-1]
    assert (received["method"], received["path"]) == ("PUT", "/v1/buckets/b/objects/big.bin")
    assert (received["size"], received["sha256"]) == (size, expected)


OVERLAPPING = """
import json, threading, urllib.request

both_inside = threading.Barrier(2, timeout=10)

def handler(event, context):
    both_inside.wait()  # each call is in the handler before either calls out
    request = urllib.request.Request(
        context.api_url + "/v1/whoami",
        headers={"Authorization": "Bearer " + context.api_token},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {"mine": context.api_token, "seen": json.load(response)["authorization"]}
"""


async def test_overlapping_calls_each_get_their_own_context_token(api_proxy: Proxy) -> None:
    await api_proxy.init_source(OVERLAPPING)
    tokens = [f"tenant-a-{uuid.uuid4().hex}", f"tenant-a-{uuid.uuid4().hex}"]
    answers = await asyncio.gather(
        *(api_proxy.post("/run", {"value": {}, "api_token": t}) for t in tokens)
    )
    for token, (status, payload) in zip(tokens, answers, strict=True):
        assert status == 200, payload
        assert payload["result"] == {"mine": token, "seen": f"Bearer {token}"}


NO_API = """
import os, sys

def handler(event, context):
    return {
        "url": os.environ.get("NIMBUS_API_URL"),
        "token": os.environ.get("NIMBUS_API_TOKEN"),
        "context_url": context.api_url,
        "context_token": context.api_token,
        "select_loaded": "select" in sys.modules,
    }
"""


@pytest.mark.parametrize("socket_kind", ["unset", "missing", "regular file"])
async def test_without_an_api_socket_nothing_is_offered(tmp_path: Path, socket_kind: str) -> None:
    env: dict[str, str] = {}
    if socket_kind == "missing":
        env["NIMBUS_API_SOCKET"] = str(tmp_path / "nowhere" / "api.sock")
    elif socket_kind == "regular file":
        (tmp_path / "api.sock").write_text("not a socket")
        env["NIMBUS_API_SOCKET"] = str(tmp_path / "api.sock")
    async with running_proxy(tmp_path, "unix", env) as proxy:
        await proxy.init_source(NO_API)
        status, payload = await proxy.post("/run", {"value": {}, "api_token": "tok"})
    assert status == 200, payload
    assert payload["result"] == {
        "url": None,
        "token": None,
        "context_url": None,
        "context_token": "tok",  # what the platform sent, though there is no API to use it on
        "select_loaded": False,  # and the proxy loaded nothing for the forwarder
    }


RAW_CALLS = """
import os, socket, time, urllib.parse

ADDRESS = None

def connect():
    return socket.create_connection(ADDRESS, timeout=10)

def read_all(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.decode("latin-1")

def call(sock, path):
    sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: api\\r\\nConnection: close\\r\\n\\r\\n".encode())
    return read_all(sock)

def handler(event):
    global ADDRESS
    url = urllib.parse.urlsplit(os.environ["NIMBUS_API_URL"])
    ADDRESS = (url.hostname, url.port)
    held = [connect() for _ in range(event["limit"])]
    extra = connect()
    refused = read_all(extra)
    extra.close()
    answered = call(held[0], "/v1/held")
    for sock in held:
        sock.close()
    # Closed connections free their slots as soon as the forwarder sees them go.
    deadline = time.monotonic() + 5
    while True:
        after = call(connect(), "/v1/after")
        if after.startswith("HTTP/1.1 200") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return {"refused": refused, "answered": answered, "after": after}
"""


async def test_forwarded_connections_are_bounded_and_extra_ones_told_why(
    tmp_path: Path, api_server: ApiServer
) -> None:
    env = {"NIMBUS_API_SOCKET": str(api_server.socket_path), "NIMBUS_API_MAX_CONNECTIONS": "3"}
    async with running_proxy(tmp_path, "unix", env) as proxy:
        await proxy.init_source(RAW_CALLS)
        status, payload = await proxy.post("/run", {"value": {"limit": 3}})
    assert status == 200, payload
    result = payload["result"]
    assert result["refused"].startswith("HTTP/1.1 503 "), result["refused"]
    assert "more than 3 concurrent" in result["refused"]
    assert result["answered"].startswith("HTTP/1.1 200 "), result["answered"]
    assert result["after"].startswith("HTTP/1.1 200 "), result["after"]
    assert [s["path"] for s in api_server.seen] == ["/v1/held", "/v1/after"]


UNREACHABLE = """
import os, urllib.error, urllib.request

def handler(event):
    try:
        urllib.request.urlopen(os.environ["NIMBUS_API_URL"] + "/v1/whoami", timeout=10)
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read().decode()}
    return {"status": 200}
"""


async def test_an_api_socket_nobody_listens_on_gives_a_502_that_says_so(tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as bound_only:
        bound_only.bind(str(dead))  # a socket file, but connecting to it is refused
        async with running_proxy(tmp_path, "unix", {"NIMBUS_API_SOCKET": str(dead)}) as proxy:
            await proxy.init_source(UNREACHABLE)
            status, payload = await proxy.post("/run", {"value": {}})
            assert status == 200, payload
            assert payload["result"]["status"] == 502
            assert "Nimbus API is unreachable" in payload["result"]["body"]
            assert proxy.process.poll() is None


def _load_proxy_module() -> Any:
    spec = importlib.util.spec_from_file_location("nimbus_proxy_under_test", PROXY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things only: main() runs under __main__
    return module


proxy_module = _load_proxy_module()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@given(json_values)
def test_proxy_json_codec_agrees_with_the_json_module(value: Any) -> None:
    encoded = proxy_module.json_dumps(value)
    assert encoded == json.dumps(value)
    assert proxy_module.json_loads(encoded.encode()) == json.loads(encoded)
    assert proxy_module.json_loads("  " + encoded + "\n") == value


@pytest.mark.parametrize("bad", [b"{nope", b"[1,]", b"1 2", b"", b'"unterminated'])
def test_proxy_json_loads_rejects_what_json_rejects(bad: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        proxy_module.json_loads(bad)


def test_proxy_json_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="set"):
        proxy_module.json_dumps({"a": {1, 2}})
    with pytest.raises(ValueError):
        proxy_module.json_dumps([math.inf], allow_nan=False)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        proxy_module.json_dumps(loop)


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
