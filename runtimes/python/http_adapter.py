"""Nimbus HTTP adapter: the /init and /run protocol in front of a plain HTTP server.

Runs in a container of its own beside a function's image that is a plain HTTP server
(Knative's contract: listen on $PORT, answer ``POST /`` with the event as its JSON body,
the result as the response body), in that container's network namespace, so it reaches
the server at 127.0.0.1 while neither has a network. It speaks to the invoker exactly as
proxy.py does (same server, same socket, same token rule), and only once the server's
port accepts does it open its socket: the invoker's readiness wait covers the image's
start.

    POST /init  accepted once (the image carries its function: any code is ignored).
    POST /run   ``value`` is POSTed to http://127.0.0.1:$NIMBUS_TARGET_PORT/ as JSON,
        within the call's ``deadline``. A 2xx answer is the result: its body as JSON
        when it parses, else as text. Any other status, no answer in time, or an answer
        over ``$NIMBUS_MAX_REPLY`` bytes (6 MiB) is a 502 with the error. The server's
        own output is in the container log (``docker logs``), not in the call's logs.

Standard library only, like proxy.py, whose server it reuses (imported from beside it).
"""

from __future__ import annotations

import os
import sys
import time

import proxy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_REPLY = int(os.environ.get("NIMBUS_MAX_REPLY", str(6 * 2**20)))
WAIT_S = float(os.environ.get("NIMBUS_TARGET_WAIT_S", "60"))
ERROR_TEXT = 500  # characters of a failing answer's body kept in the error


def target_port() -> int:
    """The port the image's server listens on."""
    return int(os.environ.get("NIMBUS_TARGET_PORT") or "8080")


def wait_for_port(port: int, seconds: float) -> bool:
    """True once 127.0.0.1:`port` accepts a connection, False after `seconds`."""
    import socket

    deadline = time.monotonic() + seconds
    delay = 0.005
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return True
        except OSError:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
    return False


def decode_result(body: bytes) -> Any:
    """An answer's body as the call's result: JSON when it parses, else text."""
    try:
        return proxy.json_loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


class Adapter:
    """What proxy.Server calls: /init once, /run forwarded to the image's server."""

    code_dir: str | None = None  # nothing of its own to clean up (proxy.Server asks)

    def __init__(self, port: int) -> None:
        self.port = port
        self.initialized = False

    def init(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Accepted once, as the proxy does; the image already carries the function."""
        if self.initialized:
            return 403, {"error": "cannot initialize the action more than once"}
        self.initialized = True
        return 200, {"ok": True}

    def run(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST the event to the image's server and answer its reply as the result."""
        if not self.initialized:
            return 403, {"error": "the action is not initialized: POST /init first"}
        if not isinstance(body, dict):
            return 400, {"error": "/run body must be a JSON object"}
        deadline_ms = body.get("deadline")
        timeout = 900.0
        if isinstance(deadline_ms, int | float):
            timeout = max(0.05, deadline_ms / 1000 - time.time())
        try:
            event = proxy.json_dumps(body.get("value", {}), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            return 400, {"error": f"the event is not JSON: {exc}"}
        try:
            status, reply = self._post(event, timeout)
        except TimeoutError:
            return 502, {"error": f"the image's server did not answer within {timeout:.1f} s"}
        except OSError as exc:
            return 502, {"error": f"the image's server cannot be reached: {exc}"}
        if len(reply) > MAX_REPLY:
            return 502, {"error": f"the image's server answered more than {MAX_REPLY} bytes"}
        if not 200 <= status < 300:
            text = reply[:ERROR_TEXT].decode("utf-8", errors="replace")
            return 502, {"error": f"the image's server answered HTTP {status}: {text}"}
        return 200, {"result": decode_result(reply), "logs": []}

    def _post(self, event: bytes, timeout: float) -> tuple[int, bytes]:
        """One request on a fresh connection; the reply read up to one byte past the bound."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", "/", body=event, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read(MAX_REPLY + 1)
        finally:
            conn.close()


def main() -> None:
    """Wait for the image's server, then serve the protocol until SIGTERM."""
    import _signal

    port = target_port()
    if not wait_for_port(port, WAIT_S):
        sys.stderr.write(f"nimbus http adapter: nothing listens on port {port}\n")
        raise SystemExit(1)
    server = proxy.Server(Adapter(port), os.environ.pop("NIMBUS_PROXY_TOKEN", ""))  # type: ignore[arg-type]

    def stop(signum: int, frame: Any) -> None:
        server.cleanup()
        os._exit(0)

    _signal.signal(_signal.SIGTERM, stop)
    _signal.signal(_signal.SIGINT, stop)
    address = server.listen(os.environ)
    sys.stderr.write(f"nimbus http adapter on {address} -> 127.0.0.1:{port}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
