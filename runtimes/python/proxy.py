"""Nimbus Python runtime proxy: runs one function inside one container.

Standard library only, and lean on imports because its start-up is most of a
cold start: it uses the C modules under socket/signal/threading/json (_socket,
_signal, _thread, _json) directly and parses HTTP by hand. Importing socket.py,
threading.py and json (with re and enum behind them) costs ~40 ms per start;
http.server ~90 ms. Heavier modules are imported only on the paths that need them.

Protocol (the OpenWhisk action protocol, JSON over HTTP/1.1 with keep-alive)::

    POST /init  {"value": {"code": str, "binary": bool, "main": "module.func", "env": {..}}}
        Accepted once; any later /init gets 403. ``binary=false``: ``code`` is one
        Python source file, written as ``<module>.py``; empty, the module is the image's
        own, imported from ``$NIMBUS_FUNCTION_DIR`` (default /function: an image built
        FROM this runtime with its function baked in). ``binary=true``: ``code`` is a
        base64 zip whose root goes on sys.path (it may carry vendored packages and
        dotted modules: ``pkg.mod.func``). ``env`` is applied to os.environ before
        the import. 200 ``{"ok": true}``; 502 ``{"error": ...}`` when the module
        cannot be imported or the handler is missing; 400 on a malformed request.
    POST /run   {"value": <args>, "activation_id": str, "deadline": <epoch ms>,
                 "function_name": str, "memory_limit_mb": int, "api_token": str, ...}
        Calls the handler: one parameter -> ``handler(args)``; two -> Lambda-style
        ``handler(event, context)`` (context: aws_request_id, function_name,
        memory_limit_in_mb, get_remaining_time_in_millis(), api_url, api_token). 200
        ``{"result": <json>, "logs": [line, ...]}``; 502 ``{"error": "Type: msg",
        "logs": [...], "traceback": "..."}`` when the handler raised or its result
        is not JSON; 403 before a successful /init.
    GET /healthz -> 200 {"ok": true}

Calls to /run may overlap (one thread per connection): what each activation
writes to sys.stdout/sys.stderr is captured in a thread-local buffer, so logs
never mix. Output from threads the handler starts itself goes to the real
streams (the container log).

The Nimbus API from inside the function: when ``$NIMBUS_API_SOCKET`` names a unix
socket at /init (the invoker bind-mounts the gateway's), the proxy forwards
127.0.0.1:<a free port> to it and sets ``NIMBUS_API_URL=http://127.0.0.1:<port>``
before the import; each /run's ``api_token`` becomes ``NIMBUS_API_TOKEN``. Overlapping
calls share one environment, so the variable is the latest call's token:
``context.api_token`` is always the call's own. At most ``$NIMBUS_API_MAX_CONNECTIONS``
(default 64) connections are forwarded at once. Without the socket none of this
happens: no listener, no variables, ``context.api_url`` is None.

Transport: a unix socket at ``$NIMBUS_SOCKET`` (mode 0666), else TCP on
``$NIMBUS_HOST:$NIMBUS_PORT`` (default 0.0.0.0:8080). SIGTERM/SIGINT exit at
once: the proxy is PID 1 in its container.

When ``$NIMBUS_PROXY_TOKEN`` is set (a port published on a shared VM, where other
containers can reach it), /init and /run need ``Authorization: Bearer <token>`` and
answer 401 otherwise; the variable is removed before any function code loads.
"""

from __future__ import annotations

import _signal
import _socket
import _thread
import os
import sys
import time
from _operator import _compare_digest

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds of cold start; only the checkers need it
    from collections.abc import Callable, Mapping
    from typing import Any

LISTEN_BACKLOG = 1024
MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 512 * 1024 * 1024
LOG_LIMIT = int(os.environ.get("NIMBUS_LOG_LIMIT", str(1024 * 1024)))
NO_DEADLINE_MS = 2**31 - 1
BAKED_FUNCTION_DIR = "/function"  # where an image FROM this runtime keeps its function

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class BadRequest(Exception):
    """The client sent something that is not a request we can answer."""


# ---------------------------------------------------------------------- JSON
# `import json` pulls in `re` (and its compiler) for the pure-Python fallback
# scanner: about a third of the proxy's start-up. The C accelerator that json
# itself uses does the real work, so drive it directly and keep `json` as the
# fallback for an interpreter built without it.


class _ScanContext:
    """The attributes _json.make_scanner reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.replace("Infinity", "inf"))


def _unserialisable(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


try:
    from _json import encode_basestring_ascii as _c_escape
    from _json import make_encoder as _c_make_encoder
    from _json import make_scanner as _c_make_scanner

    _c_scan: Callable[[str, int], tuple[Any, int]] | None
    _c_scan = _c_make_scanner(_ScanContext())  # type: ignore[arg-type]
except ImportError:  # pragma: no cover - CPython always has _json
    _c_scan = None


def json_dumps(obj: Any, allow_nan: bool = True) -> str:
    """json.dumps(obj) with default separators; TypeError/ValueError like json."""
    if _c_scan is None:
        import json

        return json.dumps(obj, allow_nan=allow_nan)
    encode = _c_make_encoder(
        {}, _unserialisable, _c_escape, None, ": ", ", ", False, False, allow_nan
    )
    return "".join(encode(obj, 0))


def json_loads(data: bytes | str) -> Any:
    """json.loads for UTF-8 text; ValueError on anything that is not one JSON value."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if _c_scan is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = _c_scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"Expecting value: char {exc.value}") from None
    except Exception:
        # The C scanner reports syntax errors with json.decoder's exception class
        # and fails oddly when that module is not loaded: let json say what is wrong.
        import json

        return json.loads(text)
    if text[end:].strip(" \t\n\r"):
        raise ValueError(f"Extra data: char {end}")
    return value


# ---------------------------------------------------------------- log capture


class _Capture:
    """One activation's output: both streams, in write order, up to LOG_LIMIT chars."""

    __slots__ = ("parts", "size", "truncated")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def add(self, text: str) -> None:
        if self.size >= LOG_LIMIT:
            self.truncated = True
            return
        self.parts.append(text)
        self.size += len(text)

    def lines(self) -> list[str]:
        lines = "".join(self.parts).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if self.truncated:
            lines.append(f"[nimbus] logs truncated at {LOG_LIMIT} characters")
        return lines


class _Dispatch:
    """Stands in for sys.stdout/sys.stderr: writes go to the calling thread's
    capture when it has one, else to the real stream.

    Swapping sys.stdout per call would race between threads; routing at write
    time also catches loggers that grabbed sys.stderr once at set-up.
    """

    def __init__(self, real: Any, local: _thread._local) -> None:
        self._real = real
        self._local = local

    def write(self, text: str) -> int:
        capture = getattr(self._local, "capture", None)
        if capture is None:
            return int(self._real.write(text))
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        capture.add(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if getattr(self._local, "capture", None) is None:
            self._real.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# ------------------------------------------------------------------- context


class Context:
    """The Lambda-style second argument of a two-parameter handler."""

    def __init__(
        self, request: dict[str, Any], api_url: str | None = None, api_token: str | None = None
    ) -> None:
        self.aws_request_id = str(request.get("activation_id") or "")
        self.activation_id = self.aws_request_id
        self.function_name = str(request.get("function_name") or "")
        self.function_version = str(request.get("function_version") or "")
        self.memory_limit_in_mb = int(request.get("memory_limit_mb") or 0)
        deadline = request.get("deadline")
        self.deadline_ms = float(deadline) if deadline is not None else None
        # This call's own token, even when overlapping calls race on os.environ.
        self.api_url = api_url
        self.api_token = api_token

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the platform kills this activation."""
        if self.deadline_ms is None:
            return NO_DEADLINE_MS
        return max(0, int(self.deadline_ms - time.time() * 1000))

    def __repr__(self) -> str:
        return f"Context(aws_request_id={self.aws_request_id!r}, function={self.function_name!r})"


# -------------------------------------------------------------- API forwarder
# Function containers have no network. The invoker bind-mounts the gateway's unix API
# socket at $NIMBUS_API_SOCKET and the forwarder offers it on TCP loopback, so any HTTP
# client in the function (urllib, requests, an SDK) reaches it at $NIMBUS_API_URL.
# One thread polls every forwarded connection: the container's pids limit counts
# threads, and non-blocking buffered pipes cannot deadlock when both ends write at once
# (a relay that blocks in send while its peer also blocks in send can).

API_MAX_CONNECTIONS = 64
API_CHUNK = 65536
API_BUFFER = 4 * API_CHUNK  # per direction: stop reading a side while its peer lags this far
API_BACKLOG = 128


class _Half:
    """One direction of a forwarded connection: bytes read from src, not yet sent to dst."""

    __slots__ = ("buf", "done", "dst", "eof", "src")

    def __init__(self, src: _socket.socket, dst: _socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.buf = bytearray()
        self.eof = False  # src said EOF
        self.done = False  # ... and everything before it reached dst, then EOF too

    def wants_read(self) -> bool:
        return not self.eof and len(self.buf) < API_BUFFER


class _Link:
    """One forwarded connection: the function's TCP socket and its unix socket to the API."""

    __slots__ = ("client", "client_fd", "down", "up", "upstream", "upstream_fd", "upstream_gone")

    def __init__(self, client: _socket.socket, upstream: _socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        # fileno() is -1 once closed: keep the numbers to unregister them.
        self.client_fd = client.fileno()
        self.upstream_fd = upstream.fileno()
        self.up = _Half(client, upstream)  # the function's requests
        self.down = _Half(upstream, client)  # the API's responses
        # The API closed its end outright (not a half-close): nothing the function
        # still sends can be answered, so the link ends once the responses are out.
        self.upstream_gone = False


class ApiForwarder:
    """Serves the Nimbus API (a unix socket) on 127.0.0.1 at a port the kernel picks.

    Several containers may share one loopback namespace, hence no fixed port. Bytes pass
    through untouched in both directions, half-closes included. At most `limit`
    connections are forwarded at once; extra ones get a 503 and are closed, and a
    connection the API socket refuses gets a 502, so the function sees why.
    """

    def __init__(self, target: str, limit: int = API_MAX_CONNECTIONS) -> None:
        self.target = target
        self.limit = max(1, limit)
        self.url = ""
        self._links: dict[int, _Link] = {}  # by both of its fds
        self._count = 0
        self._listener: _socket.socket | None = None
        self._poll: Any = None

    def start(self) -> str:
        """Listen, start the forwarding thread, return the URL to reach the API at."""
        import select  # a C module, but only containers that use the API pay for it

        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.listen(API_BACKLOG)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._listener = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        _thread.start_new_thread(self._serve, (select,))
        return self.url

    def _serve(self, select: Any) -> None:
        assert self._listener is not None
        listen_fd = self._listener.fileno()
        accepting = True
        while True:
            # Out of fds, the listener stays readable: stop polling it until the next
            # event or a second has passed, rather than spin on accept errors.
            events = self._poll.poll(None if accepting else 1000)
            if not accepting:
                self._poll.register(listen_fd, select.POLLIN)
                accepting = True
            for fd, mask in events:
                if fd == listen_fd:
                    if not self._accept_all(select):
                        self._poll.unregister(listen_fd)
                        accepting = False
                    continue
                link = self._links.get(fd)
                if link is None:
                    continue  # closed by an earlier event of this round
                try:
                    self._on_event(link, fd, mask, select)
                except OSError:
                    self._close(link)  # a reset or a vanished peer: drop both ends
                except Exception as exc:  # a bug here must not stop every other link
                    _log(f"API forwarder: {_describe(exc)}")
                    self._close(link)

    def _accept_all(self, select: Any) -> bool:
        """Accept what is pending; False when accepting fails (no fds left)."""
        assert self._listener is not None
        while True:
            try:
                fd, _ = self._listener._accept()  # type: ignore[attr-defined]  # not in the stub
            except BlockingIOError:
                return True
            except InterruptedError:
                continue
            except OSError as exc:
                _log(f"API forwarder: cannot accept: {exc}")
                return False
            client = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
            if self._count >= self.limit:
                _refuse(client, 503, f"more than {self.limit} concurrent Nimbus API connections")
                continue
            upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            upstream.setblocking(False)
            try:
                # A unix connect completes at once or fails (EAGAIN: the API's backlog is full).
                upstream.connect(self.target)
            except OSError as exc:
                upstream.close()
                _log(f"API forwarder: cannot reach {self.target}: {exc}")
                _refuse(client, 502, f"the Nimbus API is unreachable: {exc}")
                continue
            client.setblocking(False)
            client.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            link = _Link(client, upstream)
            self._links[link.client_fd] = link
            self._links[link.upstream_fd] = link
            self._count += 1
            self._update(link, select)

    def _on_event(self, link: _Link, fd: int, mask: int, select: Any) -> None:
        if mask & (select.POLLERR | select.POLLNVAL):
            self._close(link)
            return
        reading, writing = (link.up, link.down) if fd == link.client_fd else (link.down, link.up)
        # POLLHUP may come with data still queued (a unix peer that wrote, then closed):
        # read on until EOF rather than drop it.
        if mask & (select.POLLIN | select.POLLHUP) and reading.wants_read():
            self._read(reading)
            if reading.eof and mask & select.POLLHUP and fd == link.upstream_fd:
                link.upstream_gone = True  # a unix socket says HUP only on a full close
        if writing.buf and mask & (select.POLLOUT | select.POLLHUP):
            self._flush(writing)
        self._update(link, select)

    def _read(self, half: _Half) -> None:
        try:
            data = half.src.recv(API_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            half.buf += data
        else:
            half.eof = True
        self._flush(half)

    @staticmethod
    def _flush(half: _Half) -> None:
        while half.buf:
            try:
                sent = half.dst.send(half.buf)
            except (BlockingIOError, InterruptedError):
                return
            del half.buf[:sent]
        if half.eof and not half.done:
            half.done = True
            try:
                half.dst.shutdown(_socket.SHUT_WR)  # pass the half-close on
            except OSError:
                pass

    def _update(self, link: _Link, select: Any) -> None:
        if link.down.done and (link.up.done or link.upstream_gone):
            self._close(link)
            return
        for fd, reading, writing in (
            (link.client_fd, link.up, link.down),
            (link.upstream_fd, link.down, link.up),
        ):
            mask = (select.POLLIN if reading.wants_read() else 0) | (
                select.POLLOUT if writing.buf else 0
            )
            if mask:
                self._poll.register(fd, mask)  # registers or modifies
            else:
                # Unregistered, so a hung-up peer cannot make poll() spin while the
                # other side drains; the other side's events bring it back.
                try:
                    self._poll.unregister(fd)
                except KeyError:
                    pass

    def _close(self, link: _Link) -> None:
        if self._links.pop(link.client_fd, None) is None:
            return
        self._links.pop(link.upstream_fd, None)
        self._count -= 1
        for fd in (link.client_fd, link.upstream_fd):
            try:
                self._poll.unregister(fd)
            except KeyError:
                pass
        link.client.close()
        link.upstream.close()


def _refuse(conn: _socket.socket, status: int, message: str) -> None:
    """Answer a connection that will not be forwarded, and close it (best effort)."""
    body = json_dumps({"error": message}).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    try:
        conn.setblocking(False)
        conn.send(head + body)  # a fresh socket's send buffer takes it whole
        conn.shutdown(_socket.SHUT_WR)
    except OSError:
        pass
    conn.close()


def _log(text: str) -> None:
    # Outside an activation _Dispatch passes this to the real stream: the container log.
    sys.stderr.write(f"nimbus proxy: {text}\n")
    sys.stderr.flush()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


def start_api_forwarder() -> ApiForwarder | None:
    """Offer the API at $NIMBUS_API_SOCKET on loopback; None when there is none to offer."""
    path = os.environ.get("NIMBUS_API_SOCKET")
    if not path:
        return None
    import stat  # already loaded by os

    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return None
    except OSError:
        return None
    forwarder = ApiForwarder(path, _env_int("NIMBUS_API_MAX_CONNECTIONS", API_MAX_CONNECTIONS))
    try:
        forwarder.start()
    except OSError as exc:  # e.g. no loopback interface: the function may not need the API
        _log(f"cannot offer the Nimbus API on 127.0.0.1: {exc}")
        return None
    return forwarder


# -------------------------------------------------------------------- action


def _arity(func: Callable[..., Any]) -> int:
    """How many positional arguments to pass: 2 for (event, context), else 1 (or 0)."""
    code = getattr(func, "__code__", None)
    if code is not None and not hasattr(func, "__wrapped__"):
        if code.co_flags & 0x04:  # *args: accepts the Lambda pair
            return 2
        bound = 1 if getattr(func, "__self__", None) is not None else 0
        return min(int(code.co_argcount) - bound, 2)
    # Classes, partials and decorated functions (signature follows __wrapped__).
    import inspect

    count = 0
    for param in inspect.signature(func).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return 2
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, 2)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Action:
    """The one function this proxy serves, and its /init and /run logic."""

    def __init__(self, local: _thread._local) -> None:
        self._local = local
        self._lock = _thread.allocate_lock()
        self._attempted = False
        self.handler: Callable[..., Any] | None = None
        self.arity = 1
        self.code_dir: str | None = None
        self.api: ApiForwarder | None = None

    def init(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Load the code once. Any second attempt is refused, even after a failure,
        because a failed import may have left half a module behind."""
        with self._lock:
            if self._attempted:
                return 403, {"error": "cannot initialize the action more than once"}
            value = body.get("value") if isinstance(body, dict) else None
            if not isinstance(value, dict):
                return 400, {"error": '/init body must be {"value": {...}}'}
            self._attempted = True
            try:
                self._load(value)
            except BadRequest as exc:
                return 400, {"error": str(exc)}
            except _InitError as exc:
                return 502, {"error": str(exc)}
            return 200, {"ok": True}

    def _load(self, value: dict[str, Any]) -> None:
        main = value.get("main") or "main.main"
        code = value.get("code")
        env = value.get("env") or {}
        if not isinstance(main, str) or not isinstance(code, str):
            raise BadRequest("/init needs string fields 'code' and 'main'")
        if not isinstance(env, dict):
            raise BadRequest("/init 'env' must be an object")
        module_name, _, func_name = main.rpartition(".")
        if not module_name or not func_name:
            raise BadRequest(f"handler {main!r} must be 'module.function'")

        if not code and not value.get("binary"):
            # An image built FROM this runtime with its function baked in: no code comes.
            search = os.environ.get("NIMBUS_FUNCTION_DIR") or BAKED_FUNCTION_DIR
        else:
            self.code_dir = search = _make_code_dir()
        if value.get("binary"):
            _extract_zip(code, search)
        elif code:
            if "." in module_name:
                raise BadRequest(
                    f"handler {main!r}: single-file code needs a plain module name "
                    "(use a zip for packages)"
                )
            with open(os.path.join(search, module_name + ".py"), "w", encoding="utf-8") as f:
                f.write(code)

        # Started before the import so module-level code can call the API, and set
        # after the function's env so that cannot point NIMBUS_API_URL elsewhere.
        self.api = start_api_forwarder()
        for key, val in env.items():
            os.environ[str(key)] = "" if val is None else str(val)
        if self.api is not None:
            os.environ["NIMBUS_API_URL"] = self.api.url

        top = module_name.split(".", 1)[0]
        loaded = sys.modules.get(top)
        origin = str(getattr(loaded, "__file__", ""))
        if loaded is not None and not origin.startswith(search):
            raise _InitError(
                f"cannot import module {module_name!r} for handler {main!r}: the name "
                f"{top!r} is taken by a module the runtime has already loaded; rename it"
            )
        # A new sys.path entry gets a fresh finder, so no cache needs invalidating
        # (importlib.invalidate_caches would import importlib.metadata).
        sys.path.insert(0, search)
        try:
            __import__(module_name)
            module = sys.modules[module_name]
        except BaseException as exc:  # a SyntaxError or SystemExit is the function's fault too
            raise _InitError(
                f"cannot import module {module_name!r} for handler {main!r}: {_describe(exc)}"
            ) from None
        try:
            func = getattr(module, func_name)
        except AttributeError as exc:
            raise _InitError(f"handler {main!r} not found: {exc}") from None
        if not callable(func):
            raise _InitError(f"handler {main!r} is not callable ({type(func).__name__})")
        self.arity = _arity(func)
        self.handler = func

    def run(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Call the handler with the request's args and this thread's output captured."""
        handler = self.handler
        if handler is None:
            return 403, {"error": "the action is not initialized: POST /init first"}
        if not isinstance(body, dict):
            return 400, {"error": "/run body must be a JSON object"}
        args = body.get("value", {})
        token = body.get("api_token")
        if not isinstance(token, str) or not token:
            token = None
        api = self.api
        if api is not None:
            # Process-wide, so last writer wins when calls overlap; context.api_token
            # is exact. No token: drop the previous call's rather than hand it on.
            if token is not None:
                os.environ["NIMBUS_API_TOKEN"] = token
            else:
                os.environ.pop("NIMBUS_API_TOKEN", None)
        capture = _Capture()
        self._local.capture = capture
        try:
            if self.arity >= 2:
                result = handler(args, Context(body, api.url if api else None, token))
            elif self.arity == 1:
                result = handler(args)
            else:
                result = handler()
        except BaseException as exc:  # SystemExit from a handler is an error, not our exit
            self._local.capture = None
            import traceback

            tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            return 502, {"error": _describe(exc), "logs": capture.lines(), "traceback": text}
        self._local.capture = None
        try:
            # Encoded here, not by the caller, so a bad result is reported as such.
            encoded = json_dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return 502, {
                "error": f"the handler's result is not JSON-serialisable: {_describe(exc)}",
                "logs": capture.lines(),
            }
        return 200, {"result": _Raw(encoded), "logs": capture.lines()}


class _InitError(Exception):
    """The function's code could not be loaded (reported as 502)."""


class _Raw:
    """An already-encoded JSON value, spliced into the response as is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _make_code_dir() -> str:
    # tempfile would cost an import of random/hashlib; pid + ns is unique enough.
    base = os.environ.get("TMPDIR") or "/tmp"
    path = os.path.join(base, f"nimbus-code-{os.getpid()}-{time.time_ns()}")
    os.makedirs(path, mode=0o700)
    return path


def _extract_zip(code: str, dest: str) -> None:
    import binascii
    import io
    import zipfile

    try:
        data = binascii.a2b_base64(code.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"binary code is not valid base64: {exc}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(dest)  # zipfile drops absolute paths and '..' parts
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"binary code is not a zip archive: {exc}") from None


# ---------------------------------------------------------------------- HTTP


def _encode(payload: dict[str, Any]) -> bytes:
    raw = payload.get("result")
    if isinstance(raw, _Raw):
        rest = {k: v for k, v in payload.items() if k != "result"}
        tail = json_dumps(rest)
        text = '{"result": ' + raw.text + (", " + tail[1:] if len(tail) > 2 else "}")
        return text.encode("utf-8")
    return json_dumps(payload).encode("utf-8")


class _Reader:
    """Buffered reads from a connected socket (socket.makefile lives in socket.py)."""

    __slots__ = ("_buf", "_conn")

    def __init__(self, conn: _socket.socket) -> None:
        self._conn = conn
        self._buf = bytearray()

    def readline(self, limit: int) -> bytes:
        """Up to and including the next LF; at most about `limit` bytes; b"" at EOF."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                return line
            start = len(self._buf)
            if start >= limit:
                break
            chunk = self._conn.recv(65536)
            if not chunk:
                break
            self._buf += chunk
        line = bytes(self._buf)
        self._buf.clear()
        return line

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes, or fewer if the peer closed first."""
        have = len(self._buf)
        if have >= size:
            data = bytes(self._buf[:size])
            del self._buf[:size]
            return data
        out = bytearray(size)
        out[:have] = self._buf
        self._buf.clear()
        view = memoryview(out)
        while have < size:
            got = self._conn.recv_into(view[have:])
            if not got:
                break
            have += got
        view.release()
        del out[have:]
        return bytes(out)


def _read_request(
    stream: _Reader, conn: _socket.socket
) -> tuple[str, str, str, dict[str, str], bytes] | None:
    """One request from a buffered socket file, or None at a clean end of stream."""
    line = stream.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # tolerate blank lines between requests
        line = stream.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest("request line too long")
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise BadRequest("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = stream.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, val = line.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("malformed header line")
        headers[name.strip().lower()] = val.strip()
    else:
        raise BadRequest("too many headers")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(stream)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            raise BadRequest("bad Content-Length")
        if length and headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = stream.read(length) if length else b""
        if len(body) != length:
            return None  # the peer went away mid-body
    return method, target, version, headers, body


def _read_chunked(stream: _Reader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = stream.readline(MAX_LINE + 1)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        if size == 0:
            while stream.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > MAX_BODY:
            raise BadRequest("body too large")
        chunks.append(stream.read(size))
        stream.readline(MAX_LINE + 1)


class Server:
    """Accepts connections and serves each on its own thread."""

    def __init__(self, action: Action, token: str = "") -> None:
        self.action = action
        self.listener: _socket.socket | None = None
        self.socket_path: str | None = None
        self.expected = ("Bearer " + token).encode() if token else b""

    def listen(self, environ: Mapping[str, str]) -> str:
        """Bind as the environment says; return a printable address."""
        path = environ.get("NIMBUS_SOCKET")
        if path:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            try:
                os.unlink(path)  # a stale socket from a previous run
            except FileNotFoundError:
                pass
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            sock.bind(path)
            os.chmod(path, 0o666)  # the host side may run as another user
            self.socket_path = path
            address = "unix:" + path
        else:
            host = environ.get("NIMBUS_HOST") or "0.0.0.0"
            port = int(environ.get("NIMBUS_PORT") or "8080")
            family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            address = f"http://{host}:{sock.getsockname()[1]}"
        sock.listen(LISTEN_BACKLOG)  # the default of 5 resets connections under load
        self.listener = sock
        return address

    def serve_forever(self) -> None:
        assert self.listener is not None
        family = self.listener.family
        while True:
            fd, _ = self.listener._accept()  # type: ignore[attr-defined]  # not in the stub
            conn = _socket.socket(family, _socket.SOCK_STREAM, 0, fd)
            if family != _socket.AF_UNIX:
                conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            # Raw threads: they never block exit, and threading.py costs start-up time.
            _thread.start_new_thread(self._serve_conn, (conn,))

    def _serve_conn(self, conn: _socket.socket) -> None:
        stream = _Reader(conn)
        try:
            while True:
                try:
                    request = _read_request(stream, conn)
                except BadRequest as exc:
                    self._send(conn, 400, {"error": str(exc)}, False)
                    return
                if request is None:
                    return
                method, target, version, headers, body = request
                connection = headers.get("connection", "").lower()
                if version == "HTTP/1.1":
                    keep = connection != "close"
                else:
                    keep = connection == "keep-alive"
                if self.expected and not self._authorized(target, headers):
                    status, payload = 401, {"error": "missing or wrong proxy token"}
                else:
                    status, payload = self._dispatch(method, target, body)
                self._send(conn, status, payload, keep)
                if not keep:
                    return
        except OSError:
            return  # the peer reset or closed: nothing to answer
        finally:
            conn.close()

    def _authorized(self, target: str, headers: dict[str, str]) -> bool:
        if target.split("?", 1)[0] == "/healthz":
            return True  # readiness carries no secret and reveals nothing
        given = headers.get("authorization", "").encode("latin-1", "replace")
        return _compare_digest(given, self.expected)

    def _dispatch(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return (200, {"ok": True}) if method == "GET" else (405, {"error": "use GET"})
        if path not in ("/init", "/run"):
            return 404, {"error": f"no route {path}"}
        if method != "POST":
            return 405, {"error": f"{path} takes POST"}
        try:
            data = json_loads(body) if body else {}
        except ValueError as exc:
            return 400, {"error": f"request body is not valid JSON: {exc}"}
        try:
            if path == "/init":
                return self.action.init(data)
            return self.action.run(data)
        except Exception as exc:  # a bug here must answer, not drop the connection
            return 500, {"error": f"proxy error: {_describe(exc)}"}

    @staticmethod
    def _send(conn: _socket.socket, status: int, payload: dict[str, Any], keep: bool) -> None:
        body = _encode(payload)
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        ).encode("latin-1")
        conn.sendall(head + body)

    def cleanup(self) -> None:
        """Remove what this process left on the filesystem (best effort)."""
        if self.socket_path:
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
        if self.action.code_dir:
            _remove_tree(self.action.code_dir)


def _remove_tree(top: str) -> None:
    # shutil would add its import to every stop; this runs while a stop is pending.
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                pass
        for name in dirs:
            path = os.path.join(root, name)
            try:
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    os.rmdir(path)
            except OSError:
                pass
    try:
        os.rmdir(top)
    except OSError:
        pass


def main() -> None:
    """Listen, serve, and exit at once on SIGTERM/SIGINT."""
    local = _thread._local()
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout = _Dispatch(real_out, local)
    sys.stderr = _Dispatch(real_err, local)
    # Taken out of the environment before any function code can inherit it.
    server = Server(Action(local), os.environ.pop("NIMBUS_PROXY_TOKEN", ""))

    def stop(signum: int, frame: Any) -> None:
        server.cleanup()
        try:
            real_out.flush()
            real_err.flush()
        finally:
            # Daemon threads may be inside a handler: do not wait for them.
            os._exit(0)

    _signal.signal(_signal.SIGTERM, stop)
    _signal.signal(_signal.SIGINT, stop)
    try:
        address = server.listen(os.environ)
    except OSError as exc:
        real_err.write(f"nimbus proxy: cannot listen: {exc}\n")
        real_err.flush()
        raise SystemExit(1) from None
    real_err.write(f"nimbus proxy {os.getpid()} listening on {address}\n")
    real_err.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
