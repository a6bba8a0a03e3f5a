"""Several gateway processes on one port: `nimbus serve --workers N`.

The supervisor (the process `nimbus serve` runs in) prepares what every worker shares
(the data dir's keys, the store's schema, the containers' API socket), then forks N
workers before any event loop or thread exists, and replaces a worker that dies. Each
worker runs the whole app, gateway and invoker, over the shared store (SQLite in WAL mode
across processes, or PostgreSQL). Each binds the TCP port itself with SO_REUSEPORT, so
the kernel spreads connections over them; the API socket the containers reach is one
listening socket made by the supervisor and inherited, so any worker answers it.

A function's warm containers live in one worker, its owner: `owner_of` hashes the name
(every version, and every tenant's function of that name, to the same worker). A call
(`gateway/call_owner.py`: an invoke, a web function or action) landing on another worker
is relayed as it came over the owner's own unix socket (`<run dir>/workers/<index>.sock`,
which the owner never relays from). Worker `i` keeps its identity across restarts (the
`worker` setting: its containers' owner label and its async-call leases), so its
replacement removes what it left. A worker takes calls on the port only once every other
worker listens on its handover socket (or `PEERS_WAIT_S` passed): before that, a call of
a function whose owner was still starting would run where it landed, a second warm pool.
How workers reach each other: `gateway/peers.py`.

What a user reads of the gateway as a whole is gathered or shared: a /metrics scrape is
answered from every worker's registry (`metrics_peers`; `gateway/metrics.py` merges); a
read of calls' records (activations, logs, bills) first has every other worker commit the
records it holds queued (`gateway/peer_commits.py`), so it sees every call answered;
tenants' rate buckets and calls in flight are shared, so rates and concurrency caps hold
once (`quotas.SharedRates`, `shared_in_flight`); a web function's own rate is its owner's.
The machine is partitioned as the functions are: each worker sizes its pool, nodes and
stem cells from its static share (`invoker/share.py`). Without a node pool the machine's
one lease is the supervisor's, taken before the workers start (`machine_lease`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from multidict import CIMultiDict

from gateway import peer_commits, step_relay
from gateway.call_owner import called_function
from gateway.errors import ApiError
from gateway.handover_client import HandoverClient, NotSent, RelayFailed
from gateway.metrics import PEERS
from gateway.middleware import Handler
from gateway.peers import Sessions, handed_over, metrics_peers
from gateway.peers import handover_socket as handover_socket  # tests import it from here
from gateway.quotas import QUOTAS, SharedRates
from gateway.server import (
    api_socket_path,
    prepare_socket_path,
    run_loop,
    serve_until_signalled,
)
from invoker.ownership import owner_of as owner_of  # tests import it from here
from invoker.providers.select import end_lease
from invoker.shared_in_flight import reset_table
from invoker.store.base import NodeLease, Store

if TYPE_CHECKING:
    from gateway.config import Config

log = logging.getLogger("nimbus.workers")
T = TypeVar("T")

HANDOVER_HEADER = "X-Nimbus-Handed-Over"
# Hop-by-hop headers, and those framing a body (the relay frames what it sends itself).
NOT_RELAYED = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}
)
RESPAWN_DELAY_S = 0.5  # a worker that keeps dying is not restarted in a tight loop
PEERS_WAIT_S = 30.0
"""How long a starting worker waits for the others' handover sockets before it takes calls
on the port anyway (a worker that never comes up: its functions are served where they land)."""
PEERS_POLL_S = 0.02


def handover(index: int, workers: int, run_dir: Path) -> Callable[..., object]:
    """A middleware relaying invokes of functions another worker owns to that worker.

    Placed first: the owner does everything else (guard, auth, metrics, the call).
    Requests that arrived on this worker's handover socket are never relayed again. They
    go over `gateway/handover_client.py`'s connections, closed by the middleware's `close`.
    """
    client = HandoverClient()
    own = str(handover_socket(run_dir, index))
    sockets = [str(handover_socket(run_dir, worker)) for worker in range(workers)]

    @web.middleware
    async def relay(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info
        if info.http_exception is not None or info.route.resource is None:
            return await handler(request)
        name = called_function(info.route.resource.canonical, request.method, info)
        owner = index if name is None else owner_of(name, workers)
        if owner == index or request.transport is None or handed_over(request, own):
            return await handler(request)  # ours (one handed to us: whatever the hash says)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_RELAYED]
        headers.append((HANDOVER_HEADER, str(index)))
        try:
            answer = await client.request(
                sockets[owner],
                request.method,
                request.raw_path,
                f"worker{owner}",
                headers,
                request.content if request.body_exists else None,
                request.content_length,
            )
        except NotSent as exc:
            # Nothing was sent: the owner is being replaced. Serve the call here.
            log.warning("worker %d unreachable (%s): serving the call here", owner, exc)
            return await handler(request)
        except RelayFailed as exc:
            # The call may have run: never run it twice.
            log.warning("worker %d failed during a handed-over call: %s", owner, exc)
            lost = ApiError(503, "the worker running this call stopped", type="platform_error")
            return lost.response()  # this middleware runs before `errors`
        out = CIMultiDict((k, v) for k, v in answer.headers if k.lower() not in NOT_RELAYED)
        return web.Response(status=answer.status, body=answer.body, headers=out)

    async def close(app: web.Application) -> None:
        await client.close()

    relay.close = close  # type: ignore[attr-defined]  # wired by `_serve_worker`
    return relay


def check_port_free(host: str, port: int) -> None:
    """OSError when something listens on the port already: SO_REUSEPORT alone would let
    a second `nimbus serve` share it silently."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket that other workers bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(False)
    return sock


@dataclasses.dataclass(frozen=True)
class _Shared:
    """What every worker is started with: how many, the port they bind, the inherited API
    socket (path, socket) if any, the access log, the handover sockets, the shared buckets."""

    workers: int
    host: str
    port: int
    api: tuple[str, socket.socket] | None
    access_log: bool
    handover_dir: Path  # one for all: `run_dir_for` may make a new temporary one per call
    rates: SharedRates  # tenants' rate buckets, in memory every worker maps
    machine_lease: NodeLease | None  # this machine's lease, without a node pool


async def _serve_worker(config: Config, index: int, shared: _Shared) -> None:
    """One worker: the app on the shared port, the API socket and its handover socket."""
    from gateway.app import create_app

    app = create_app(config)
    sessions = Sessions(shared.handover_dir)
    relay = handover(index, shared.workers, shared.handover_dir)
    app.middlewares.insert(0, relay)  # type: ignore[arg-type]
    app.on_cleanup.append(relay.close)  # type: ignore[attr-defined]
    app.on_cleanup.append(sessions.close)
    app[PEERS] = metrics_peers(index, shared.workers, shared.handover_dir, sessions)
    peer_commits.install(app, config, index, shared.workers, sessions)  # read-your-writes
    step_relay.install(app, index, sessions)  # a sequence's steps run in their owners
    app[QUOTAS].count_rates_in(shared.rates)  # one bucket per tenant for all the workers

    async def start(runner: web.AppRunner) -> None:
        # The port last, once every worker takes handed-over calls: a call taken before its
        # function's owner listened would run here, a second warm pool for the function
        # (kept until its keep-alive ran out) and its first calls at the owner cold again.
        own = str(handover_socket(shared.handover_dir, index))
        prepare_socket_path(own)
        await web.UnixSite(runner, own).start()
        path = api_socket_path(app)
        if shared.api is not None and shared.api[0] == path:
            await web.SockSite(runner, shared.api[1]).start()
        else:  # this worker's run dir is its own (a data dir path too long for sockets)
            prepare_socket_path(path)
            await web.UnixSite(runner, path).start()
            os.chmod(path, 0o666)
        late = await peers_listening(shared.handover_dir, index, shared.workers)
        if late:
            log.warning("workers %s do not take handed-over calls yet: taking calls anyway", late)
        await web.SockSite(runner, reuseport_socket(shared.host, shared.port)).start()

    await serve_until_signalled(app, start, access_log=shared.access_log)


async def accepts(path: Path) -> bool:
    """Whether something accepts connections on the unix socket at `path` now."""
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def peers_listening(
    run_dir: Path, index: int, workers: int, timeout_s: float = PEERS_WAIT_S
) -> list[int]:
    """Wait (up to `timeout_s`) until every worker but `index` accepts connections on its
    handover socket; returns those that still did not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    late = [worker for worker in range(workers) if worker != index]
    while late:
        late = [worker for worker in late if not await accepts(handover_socket(run_dir, worker))]
        if not late or loop.time() >= deadline:
            break
        await asyncio.sleep(PEERS_POLL_S)
    return late


async def _prepare(config: Config, store: Store) -> NodeLease | None:
    """Once, before the workers: the keys they share, the store's schema (opening it) and,
    without a node pool, the machine's one lease, however many workers there are."""
    from gateway.auth import load_token_secret
    from invoker.providers.select import lease_local_node

    load_token_secret(config.data_dir / "token.key")
    if config.vm_provider != "none":
        return None  # each worker's nodes are leased as they come and go
    return await lease_local_node(store, str(config.price_book.flavors.get("local", Decimal(0))))


async def _on_store(config: Config, use: Callable[[Store], Awaitable[T]]) -> T:
    """`use` the store from the supervisor, closed again before any worker forks."""
    from invoker.store.factory import open_store

    store = open_store(config.store_url, config.data_dir)
    await store.open()
    try:
        return await use(store)
    finally:
        await store.close()


def _api_listener(config: Config) -> tuple[str, socket.socket] | None:
    """The containers' API socket, made once and inherited by every worker."""
    from invoker.assemble import run_dir_for

    run_dir = run_dir_for(config.data_dir)
    if not str(run_dir).startswith(str(config.data_dir.resolve())):
        return None  # a temporary run dir: each worker makes its own
    path = str(run_dir / "api" / "api.sock")
    prepare_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o666)  # containers run as an unprivileged uid
    sock.listen(1024)
    return path, sock


def worker_config(
    config: Config, index: int, workers: int, machine_lease: NodeLease | None = None
) -> Config:
    """Worker `index`'s settings: the same, with its identity (owner label, lease id), how
    many workers there are (which owns each function's async calls, its share of the
    machine) and the machine's lease the supervisor took, if it did."""
    # The fields `InvokerSettings.worker`, `.workers` and `.machine_lease`.
    identity: dict[str, Any] = {"worker": str(index), "workers": workers}
    if machine_lease is not None:
        identity["machine_lease"] = machine_lease.id
    return dataclasses.replace(config, **identity)


def _start_worker(config: Config, index: int, shared: _Shared) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        mine = worker_config(config, index, shared.workers, shared.machine_lease)
        run_loop(_serve_worker(mine, index, shared))
    except BaseException:
        log.exception("worker %d failed", index)
        code = 1
    finally:
        os._exit(code)


def run(config: Config, host: str, port: int, *, workers: int, access_log: bool = False) -> None:
    """Blocking entry point for `nimbus serve --workers N`: run until SIGTERM or SIGINT."""
    check_port_free(host, port)
    lease = asyncio.run(_on_store(config, functools.partial(_prepare, config)))
    api = _api_listener(config)
    from invoker.assemble import run_dir_for

    handover_dir = run_dir_for(config.data_dir)
    in_flight = reset_table(config.data_dir, workers)  # each worker maps it when it starts
    shared = _Shared(workers, host, port, api, access_log, handover_dir, SharedRates(), lease)
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(workers):
        children[_start_worker(config, index, shared)] = index
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, -1)
        if stopping or index < 0:
            continue
        log.warning(
            "worker %d (pid %d) ended with status %d; starting it again", index, pid, status
        )
        time.sleep(RESPAWN_DELAY_S)
        if not stopping:
            children[_start_worker(config, index, shared)] = index
    if api is not None:
        api[1].close()
    shared.rates.close()
    in_flight.unlink(missing_ok=True)
    if lease is not None:  # the machine stops serving
        asyncio.run(_on_store(config, functools.partial(end_lease, lease=lease)))
    if not handover_dir.is_relative_to(config.data_dir.resolve()):
        shutil.rmtree(handover_dir, ignore_errors=True)  # a temporary run dir of our own
