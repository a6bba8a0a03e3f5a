"""Serving the app: TCP for clients, plus a unix socket that function containers reach.

The unix socket (`<run dir>/api/api.sock`) is bind-mounted into every container; the
runtime offers it to the function on loopback, so functions with no network can still
call the Nimbus API with their activation token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.log import access_logger

from gateway.keys import RUN_DIR

T = TypeVar("T")

# A connection has this long, from when it opens or from its previous response, to send a
# whole request head; then it is closed. aiohttp's keep-alive timer does exactly this: it
# closes a connection whose handler still waits for a complete request (slow or partial
# headers alike, so 200 slow-header connections hold nothing for long), and an idle
# keep-alive connection after the same time (Node.js also keeps idle connections 5 s).
HEADER_TIMEOUT_S = 5.0


def connection_limits() -> dict[str, Any]:
    """aiohttp request-handler settings for every connection (`handler_args` of the app)."""
    return {"keepalive_timeout": HEADER_TIMEOUT_S}


def api_socket_path(app: web.Application) -> str:
    """Where the in-container API socket lives on this host."""
    return str(app[RUN_DIR] / "api" / "api.sock")


def prepare_socket_path(path: str) -> None:
    """Make the socket's directory and clear a socket a previous run left behind."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def start_sites(runner: web.AppRunner, host: str, port: int) -> None:
    """Listen on host:port and on the containers' API socket."""
    app = runner.app
    await web.TCPSite(runner, host, port).start()
    path = api_socket_path(app)
    prepare_socket_path(path)
    await web.UnixSite(runner, path).start()
    os.chmod(path, 0o666)  # containers run as an unprivileged uid


async def serve_forever(
    app: web.Application, host: str, port: int, *, access_log: bool = False
) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly (containers removed).

    The per-request access log is off unless asked for: formatting a line per call costs
    a warm invocation a measurable share of its time (activations are the record).
    """

    async def start(runner: web.AppRunner) -> None:
        await start_sites(runner, host, port)

    await serve_until_signalled(app, start, access_log=access_log)


async def serve_until_signalled(
    app: web.Application,
    start: Callable[[web.AppRunner], Awaitable[None]],
    *,
    access_log: bool = False,
) -> None:
    """Set the app up, `start` its sites, and serve until SIGTERM or SIGINT; then clean up
    (the app's cleanup removes its containers) whether or not the sites started. A signal
    while `start` is still under way (a worker waiting for its peers) ends it there."""
    runner = web.AppRunner(app, access_log=access_logger if access_log else None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(start(runner))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start raises here
        else:  # stopped while starting: nothing more of it
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        await stopping
    finally:
        starting.cancel()
        stopping.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def run_loop(main: Coroutine[Any, Any, T], env: dict[str, str] | None = None) -> T:
    """Run a server's main coroutine on uvloop (libuv's loop: about a tenth less CPU per
    warm call than asyncio's own, measured with bench/invoke_latency.py), or on asyncio's
    loop where `NIMBUS_EVENT_LOOP=asyncio` asks for it."""
    choice = (os.environ if env is None else env).get("NIMBUS_EVENT_LOOP", "uvloop")
    if choice not in ("uvloop", "asyncio"):
        raise ValueError(f"NIMBUS_EVENT_LOOP must be uvloop or asyncio, got {choice!r}")
    if choice == "asyncio":
        return asyncio.run(main)
    import uvloop  # here: the CLI's other commands need no event loop at all

    return uvloop.run(main)


def run(app: web.Application, host: str, port: int, *, access_log: bool = False) -> None:
    """Blocking entry point for `nimbus serve`."""
    run_loop(serve_forever(app, host, port, access_log=access_log))
