"""`nimbus serve --workers 2` on real Docker: each worker has its share of the machine.

Worker `i` of N sizes its warm pool and its nodes from 1/N of the machine's memory, the
stem cells asked for are split between the workers (their total is what was asked), and
without a node pool the machine is one lease in the books, the supervisor's, whichever
worker runs a call and whichever worker is restarted (`invoker/share.py`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import docker
import pytest

from gateway.workers import handover_socket
from invoker.assemble import run_dir_for
from invoker.providers.local import host_memory_mb
from tests.conftest import ADMIN_KEY, OWNERS
from tests.integration.test_cli_support import eventually
from tests.integration.test_workers import (
    WORKERS,
    containers,
    deploy,
    invoke,
    listening,
    owned_name,
    owners_of,
    worker_owner,
    worker_pid,
)
from tests.integration.test_workers_metrics import samples, scrape
from tests.served import Served, get

pytestmark = pytest.mark.timeout(120)


def start(tmp_path_factory: pytest.TempPathFactory, name: str, *flags: str) -> Served:
    """A supervisor with two workers on a data dir of its own, both taking requests."""
    data = tmp_path_factory.mktemp(name) / "data"
    OWNERS.update(worker_owner(data, index) for index in range(WORKERS))
    platform = Served(data, "--workers", str(WORKERS), *flags).start()
    sockets = [handover_socket(run_dir_for(data), index) for index in range(WORKERS)]
    eventually(lambda: all(map(listening, sockets)))
    return platform


@pytest.fixture(scope="module")
def bare(
    runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Two workers without a node pool and with the default stem cells (python 2, nodejs 1)."""
    platform = start(tmp_path_factory, "bare", "--vm-provider", "none")
    try:
        yield platform
    finally:
        platform.stop()


def share(served: Served, resource: str) -> dict[str, float]:
    """`nimbus_worker_share` of `resource`, by worker, from one scrape of the gateway."""
    found = samples(scrape(served), "nimbus_worker_share")
    return {labels["worker"]: value for labels, value in found if labels["resource"] == resource}


def open_local_leases(served: Served) -> list[str]:
    """The ids of this machine's leases (vm_provider none) that are still open."""
    with sqlite3.connect(served.data_dir / "nimbus.db") as db:
        rows = db.execute(
            "SELECT id FROM node_leases WHERE flavor = 'local' AND down_at IS NULL"
        ).fetchall()
    return [row[0] for row in rows]


def booked(served: Served) -> list[tuple[str, int]]:
    """The nodes of the books (`/v1/admin/economics`) and the calls each ran."""
    economics = get(f"{served.url}/v1/admin/economics")
    return [(node["node_id"], node["invocations"]) for node in economics["nodes"]]


def on_worker(served: Served, worker: int, method: str, path: str, body: object) -> tuple[int, Any]:
    """One admin request answered by `worker` itself (over its handover socket)."""
    path_to = str(handover_socket(run_dir_for(served.data_dir), worker))

    async def ask() -> tuple[int, Any]:
        connector = aiohttp.UnixConnector(path=path_to)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(
                method, f"http://worker{worker}{path}", json=body, headers=headers
            ) as answer,
        ):
            return answer.status, await answer.json()

    return asyncio.run(ask())


def test_the_workers_pool_budgets_add_up_to_the_machine(bare: Served) -> None:
    pools = share(bare, "pool_memory_mb")
    assert set(pools) == {"0", "1"}
    assert sum(pools.values()) == host_memory_mb() * 3 // 4  # one process's whole budget
    assert abs(pools["0"] - pools["1"]) <= 1
    assert sum(share(bare, "stem_cells").values()) == 3


def test_stem_cells_total_what_was_asked(
    bare: Served, docker_client: docker.DockerClient, runtime_images: dict[str, str]
) -> None:
    owners = {owner: index for index, owner in owners_of(bare).items()}

    def stem_cells() -> dict[int, Counter[str]]:
        by_worker: dict[int, Counter[str]] = {index: Counter() for index in owners.values()}
        for c in containers(docker_client, set(owners)):
            if "io.nimbus.function" not in c["Labels"] and c["State"] == "running":
                by_worker[owners[c["Labels"]["io.nimbus.managed"]]][c["Image"]] += 1
        return by_worker

    python, nodejs = runtime_images["python:3.11"], runtime_images["nodejs:18"]
    wanted = {0: Counter({python: 1, nodejs: 1}), 1: Counter({python: 1})}
    assert eventually(lambda: stem_cells() == wanted)


def test_the_machine_is_one_lease_whichever_worker_runs_or_restarts(bare: Served) -> None:
    names = [owned_name("leased", worker) for worker in range(WORKERS)]
    for name in names:
        deploy(bare, name, concurrency=1)
    for i, name in enumerate(names):
        invoke(bare, name, i)
    [lease] = open_local_leases(bare)
    assert booked(bare) == [(lease, 2)]  # read at once: both calls' usage is there
    # A worker that dies and is replaced neither closes the machine's lease nor adds one.
    pid = worker_pid(bare, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    sock = handover_socket(run_dir_for(bare.data_dir), 1)
    eventually(lambda: worker_pid(bare, 1) not in (None, pid) and listening(sock))
    invoke(bare, names[1], 3)
    assert open_local_leases(bare) == [lease]
    assert booked(bare) == [(lease, 3)]


def test_stopping_the_gateway_ends_the_machines_lease(bare: Served) -> None:
    assert len(open_local_leases(bare)) == 1
    bare.stop()
    assert open_local_leases(bare) == []


def test_each_worker_gives_its_nodes_only_its_share_of_the_machine(
    runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    platform = start(tmp_path_factory, "nodes", "--stem-cells", "0", "--stem-cells", "nodejs:18=0")
    try:
        mine = share(platform, "node_memory_mb")
        assert sum(mine.values()) == host_memory_mb() * 9 // 10
        assert sum(share(platform, "min_nodes").values()) == 1  # the one asked for
        # Two large (8 GB) nodes fit in what one process may give to nodes on this
        # machine, not in half of it: the second is refused, naming the worker's share.
        assert host_memory_mb() * 9 // 10 >= 2 * 8192 > mine["1"]
        status, node = on_worker(platform, 1, "POST", "/v1/nodes", {"flavor": "large"})
        assert status == 201, node
        status, refused = on_worker(platform, 1, "POST", "/v1/nodes", {"flavor": "large"})
        assert status == 409, refused
        assert f"of {int(mine['1'])} MB already given to nodes" in refused["error"]["message"]
    finally:
        platform.stop()
