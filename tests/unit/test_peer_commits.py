"""Read-your-writes across `--workers N`: before a read of calls' records, a worker has the
others commit what they hold queued (gateway/peer_commits.py), over their handover sockets.

Two workers' apps in one process over one SQLite file, each with its own store (its own
connection and write-behind queue, as in two processes). The write-behind window is
stretched to a minute, so a record another worker has not been asked to commit stays
unseen: what a read sees is the barrier's doing, not timing's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import Config
from gateway.keys import STORE
from gateway.peer_commits import COMMIT_PATH, install
from gateway.peers import Sessions, handover_socket
from gateway.record_reads import RECORD_READS, reads_records
from invoker.store.sqlite import SqliteStore
from invoker.store.sqlite import connection as sqlite_connection
from tests.conftest import free_port
from tests.unit.store_suite import finished


@pytest.fixture(autouse=True)
def slow_write_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued writes wait a minute unless something commits them."""
    monkeypatch.setattr(sqlite_connection, "WRITE_BEHIND_WINDOW_S", 60.0)


def worker_app(index: int, workers: int, run_dir: Path, store: SqliteStore) -> web.Application:
    """A worker reduced to two reads of one record: as an activation (a record read) and
    under a route that reads no records (so the barrier leaves it alone)."""

    async def read(request: web.Request) -> web.Response:
        wanted = request.match_info.get("id") or request.match_info["name"]
        found = await request.app[STORE].get_activation("acme", wanted)
        return web.json_response({"found": found is not None})

    app = web.Application()
    app[STORE] = store
    app.router.add_get("/v1/activations/{id}", read)
    app.router.add_get("/v1/functions/{name}", read)
    sessions = Sessions(run_dir)
    app.on_cleanup.append(sessions.close)
    install(app, Config(data_dir=run_dir), index, workers, sessions)
    return app


class Worker:
    """One worker served on a TCP port (the shared port's stand-in) and its handover socket."""

    def __init__(self, store: SqliteStore, runner: web.AppRunner, port: int) -> None:
        self.store, self.runner, self.url = store, runner, f"http://127.0.0.1:{port}"

    async def get(self, path: str) -> tuple[int, object]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as answer:
            body = await answer.json() if answer.status == 200 else None
            return answer.status, body


async def start_workers(run_dir: Path, started: list[int], workers: int) -> list[Worker]:
    """Workers `started` (of `workers`) over one SQLite file in `run_dir`."""
    (run_dir / "workers").mkdir(parents=True, exist_ok=True)
    out = []
    for index in started:
        store = SqliteStore(run_dir / "nimbus.db")
        await store.open()
        runner = web.AppRunner(worker_app(index, workers, run_dir, store))
        await runner.setup()
        await web.UnixSite(runner, str(handover_socket(run_dir, index))).start()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        out.append(Worker(store, runner, port))
    return out


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[Worker]]:
    """Two workers, both running."""
    workers = await start_workers(tmp_path, [0, 1], 2)
    yield workers
    for worker in workers:
        await worker.runner.cleanup()
        await worker.store.close()


async def test_a_read_on_one_worker_sees_a_record_another_worker_has_queued(
    pair: list[Worker],
) -> None:
    ran, other = pair
    await ran.store.save_activation(finished("a1"), wait=False)  # a call's record, queued
    assert await other.get("/v1/functions/a1") == (200, {"found": False})  # not a record read
    assert await other.get("/v1/activations/a1") == (200, {"found": True})


async def test_a_worker_that_does_not_answer_is_skipped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [alone] = await start_workers(tmp_path, [0], 2)  # worker 1 is being replaced
    try:
        await alone.store.save_activation(finished("a1"), wait=False)
        with caplog.at_level(logging.WARNING, logger="nimbus.workers"):
            assert await alone.get("/v1/activations/a1") == (200, {"found": True})  # its own
        assert "worker 1 did not commit its queued writes" in caplog.text
    finally:
        await alone.runner.cleanup()
        await alone.store.close()


async def test_the_commit_is_answered_on_the_handover_socket_only(
    pair: list[Worker], tmp_path: Path
) -> None:
    ran, _ = pair
    async with aiohttp.ClientSession() as session:
        for method in ("POST", "GET"):
            async with session.request(method, ran.url + COMMIT_PATH) as answer:
                assert answer.status == 404
    connector = aiohttp.UnixConnector(path=str(handover_socket(tmp_path, 0)))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post("http://worker0" + COMMIT_PATH) as answer,
    ):
        assert answer.status == 204


async def test_commit_queued_makes_a_queued_write_visible_to_another_connection(
    pair: list[Worker],
) -> None:
    ran, other = pair
    await ran.store.save_activation(finished("a1"), wait=False)
    assert await other.store.get_activation("acme", "a1") is None
    await ran.store.commit_queued()
    assert await other.store.get_activation("acme", "a1") == finished("a1")


def test_one_worker_or_postgresql_adds_nothing(tmp_path: Path) -> None:
    sessions = Sessions(tmp_path)
    alone = web.Application()
    install(alone, Config(data_dir=tmp_path), 0, 1, sessions)
    postgres = web.Application()
    config = Config(data_dir=tmp_path, store_url="postgresql://nimbus@127.0.0.1/nimbus")
    install(postgres, config, 0, 2, sessions)
    assert list(alone.middlewares) == list(postgres.middlewares) == []


def test_every_record_read_is_a_route_the_gateway_serves(tmp_path: Path) -> None:
    app = create_app(Config(data_dir=tmp_path))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    assert RECORD_READS <= served, RECORD_READS - served
    assert not reads_records("POST", "/v1/functions/{name}/invoke")
    assert reads_records("HEAD", "/v1/activations/{id}")
