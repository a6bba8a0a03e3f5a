"""Read-your-writes across the workers of `nimbus serve --workers N`.

A synchronous call's activation and usage record are queued behind its answer and
committed by the worker that ran it a few milliseconds later (`Store.commit_queued`). A
read in that worker sees them (its store commits its queue first); a read the kernel gave
to another worker would not, so before a request that reads calls' records
(`gateway/record_reads.py`) the worker taking it asks every other worker, over its
handover socket and all at once, to commit what it has queued, and reads once they have.

The commit is answered on the handover sockets only (`answer_commits`): the public port
has no such route and answers 404. A worker that does not answer within
`COMMIT_TIMEOUT_S` is skipped with a log line (it is being replaced: its queue died with
it). A store that writes every record before the call's answer (PostgreSQL) needs none of
this: `nimbus serve` installs it for SQLite only, and a single worker never pays for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.keys import STORE
from gateway.middleware import Handler
from gateway.peers import Sessions, handed_over, handover_socket, worker_url
from gateway.record_reads import reads_records
from invoker.store.location import store_location

if TYPE_CHECKING:
    from gateway.config import Config

log = logging.getLogger("nimbus.workers")

COMMIT_PATH = "/_nimbus/commit-queued"
"""The internal route (POST, handover sockets only) that commits a worker's queued writes."""
COMMIT_TIMEOUT_S = 2.0
"""How long a read waits for another worker's commit (a batch commit takes milliseconds;
this covers a store thread busy with a long retention sweep) before it reads without it."""


def answer_commits(own: str) -> Middleware:
    """A middleware answering `POST COMMIT_PATH` that came on the handover socket at `own`:
    204 once this worker's queued writes are committed. Placed first: another worker asks,
    not a user (the request carries no credentials and is never relayed or measured)."""

    @web.middleware
    async def commit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != COMMIT_PATH or request.method != "POST" or not handed_over(request, own):
            return await handler(request)  # on the public port: no such route, a 404
        await request.app[STORE].commit_queued()
        return web.Response(status=204)

    return commit


def commit_first(index: int, workers: int, sessions: Sessions) -> Middleware:
    """A middleware (placed last: after authentication) that has every other worker commit
    its queued writes before a request reading calls' records goes on."""
    others = [worker for worker in range(workers) if worker != index]
    timeout = aiohttp.ClientTimeout(total=COMMIT_TIMEOUT_S)

    async def commit_one(worker: int) -> None:
        url = worker_url(worker, COMMIT_PATH)
        try:
            async with sessions.to(worker).post(url, timeout=timeout) as answer:
                if answer.status == 204:
                    return
                reason = f"status {answer.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        log.warning("worker %d did not commit its queued writes before a read: %s", worker, reason)

    @web.middleware
    async def barrier(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None and reads_records(request.method, resource.canonical):
            await asyncio.gather(*(commit_one(worker) for worker in others))
        return await handler(request)

    return barrier


def install(
    app: web.Application, config: Config, index: int, workers: int, sessions: Sessions
) -> None:
    """Worker `index`'s part (of `workers`): it answers the others' commits on its handover
    socket and has them commit before its reads; only over SQLite, whose records are
    written behind (PostgreSQL's are committed before the call answers)."""
    if workers < 2 or store_location(config.store_url, config.data_dir).sqlite_path is None:
        return
    own = str(handover_socket(sessions.run_dir, index))
    app.middlewares.insert(0, answer_commits(own))
    app.middlewares.append(commit_first(index, workers, sessions))
