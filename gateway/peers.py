"""How the workers of `nimbus serve --workers N` reach each other: each one's handover
socket (`<run dir>/workers/<index>.sock`), one client session per other worker over it,
and what goes over them besides handed-over calls: /metrics scrapes (`metrics_peers`)
and commits of queued records before a read (`gateway/peer_commits.py`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from gateway.errors import ApiError
from gateway.metrics import Peers

log = logging.getLogger("nimbus.workers")

SCRAPE_TIMEOUT_S = 5.0  # another worker's /metrics: well within a Prometheus scrape timeout


def handover_socket(run_dir: Path, index: int) -> Path:
    """Where worker `index` takes calls handed over by the others."""
    return run_dir / "workers" / f"{index}.sock"


def handed_over(request: web.Request, own: str) -> bool:
    """Whether `request` came in on the handover socket at `own` (from another worker)."""
    transport = request.transport
    return transport is not None and transport.get_extra_info("sockname") == own


def worker_url(worker: int, path: str) -> URL:
    """`path` on `worker`, for a session to its handover socket (the host is a label)."""
    return URL.build(scheme="http", host=f"worker{worker}", path=path)


class Sessions:
    """One HTTP client session per other worker, over its handover socket."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def to(self, worker: int) -> aiohttp.ClientSession:
        """The session to `worker` (made on first use; no timeout unless a request sets one)."""
        session = self._sessions.get(worker)
        if session is None:
            path = str(handover_socket(self.run_dir, worker))
            connector = aiohttp.UnixConnector(path=path, limit=0)
            session = self._sessions[worker] = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout()
            )
        return session

    async def close(self, app: web.Application | None = None) -> None:
        """Close every session (an `on_cleanup` hook)."""
        for session in self._sessions.values():
            await session.close()


def metrics_peers(index: int, workers: int, run_dir: Path, sessions: Sessions) -> Peers:
    """How /metrics on worker `index` gathers the other workers' series (`gateway/metrics.py`).

    The scrape's own credentials go along: each worker checks them as it checks any request.
    """
    own = str(handover_socket(run_dir, index))
    others = [worker for worker in range(workers) if worker != index]
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)

    async def scrape_one(worker: int, headers: dict[str, str]) -> str:
        url = worker_url(worker, "/metrics")
        try:
            async with sessions.to(worker).get(url, headers=headers, timeout=timeout) as answer:
                text = await answer.text()
                if answer.status == 200:
                    return text
                reason = f"status {answer.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        log.warning("worker %d did not answer a metrics scrape: %s", worker, reason)
        raise ApiError(
            503,
            f"worker {worker} did not answer (it may be restarting): a sum without it would "
            "look like a counter reset; retry the scrape",
            type="platform_error",
        )

    async def scrape(request: web.Request) -> dict[str, str]:
        auth = request.headers.get("Authorization")
        headers = {"Authorization": auth} if auth else {}
        texts = await asyncio.gather(*(scrape_one(worker, headers) for worker in others))
        return {str(worker): text for worker, text in zip(others, texts, strict=True)}

    return Peers(str(index), lambda request: handed_over(request, own), scrape)
