"""Several gateway workers: which worker owns a function, and invokes handed over to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.workers import HANDOVER_HEADER, handover, handover_socket, owner_of


def test_every_version_of_a_function_has_one_owner_and_functions_spread() -> None:
    names = [f"fn{i}" for i in range(200)]
    owners = [owner_of(name, 4) for name in names]
    assert all(
        owner_of(f"{n}:3", 4) == owner_of(f"{n}:prod", 4) == o
        for n, o in zip(names, owners, strict=True)
    )
    assert all(owners.count(w) > 20 for w in range(4))  # none starved
    assert {owner_of(n, 1) for n in names} == {0}


def worker_app(index: int, workers: int, run_dir: Path) -> web.Application:
    """A worker's app reduced to the invoke route, which says who served it."""

    async def invoke(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "worker": index,
                "body": body.decode(),
                "handed": request.headers.get(HANDOVER_HEADER),
            },
            headers={"X-Nimbus-Activation-Id": f"a{index}"},
        )

    app = web.Application(middlewares=[handover(index, workers, run_dir)])  # type: ignore[list-item]
    app.router.add_post("/v1/functions/{name}/invoke", invoke)
    app.router.add_get("/v1/functions/{name}", invoke)
    return app


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[TestClient]]:
    """Two workers, each on TCP (the shared port's stand-in) and its handover socket."""
    clients, runners = [], []
    for index in range(2):
        app = worker_app(index, 2, tmp_path)
        runner = web.AppRunner(app)
        await runner.setup()
        path = handover_socket(tmp_path, index)
        path.parent.mkdir(exist_ok=True)
        await web.UnixSite(runner, str(path)).start()
        runners.append(runner)
        client = TestClient(TestServer(worker_app(index, 2, tmp_path)))
        await client.start_server()
        clients.append(client)
    yield clients
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


async def test_an_invoke_that_lands_elsewhere_is_answered_by_the_owner(
    workers: list[TestClient],
) -> None:
    for name in ("alpha", "beta", "gamma", "delta"):
        owner = owner_of(name, 2)
        for landed in workers:
            resp = await landed.post(f"/v1/functions/{name}:2/invoke", data=b'{"x": 1}')
            assert resp.status == 200
            body = await resp.json()
            assert body["worker"] == owner and body["body"] == '{"x": 1}'
            assert resp.headers["X-Nimbus-Activation-Id"] == f"a{owner}"


async def test_other_routes_stay_where_they_land(workers: list[TestClient]) -> None:
    name = next(n for n in ("a", "b", "c", "d") if owner_of(n, 2) == 1)
    resp = await workers[0].get(f"/v1/functions/{name}")
    assert (await resp.json())["worker"] == 0


async def test_a_missing_owner_means_the_call_is_served_where_it_landed(
    tmp_path: Path,
) -> None:
    name = next(n for n in ("a", "b", "c", "d") if owner_of(n, 2) == 1)
    client = TestClient(TestServer(worker_app(0, 2, tmp_path)))  # worker 1 never started
    await client.start_server()
    try:
        resp = await client.post(f"/v1/functions/{name}/invoke", data=b"{}")
        assert resp.status == 200 and (await resp.json())["worker"] == 0
    finally:
        await client.close()
