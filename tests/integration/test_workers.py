"""`nimbus serve --workers 2` on real Docker: the workers share one port and one store.

One supervisor with two workers serves the whole module (starting it is the slow part).
Calls go over new connections, so the kernel (SO_REUSEPORT) spreads them over both
workers. The tests check what a user of the platform would: a function runs warm in one
container whichever worker a call lands on, an async call runs exactly once and on the
worker owning its function (whichever worker accepted it), a worker
that dies comes back without leaking its containers, and SIGTERM stops everything.
The SIGTERM test stops the module's platform: it runs last.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from gateway.config import Config
from gateway.workers import handover_socket, owner_of
from invoker.assemble import MAX_RUN_DIR_CHARS, run_dir_for
from tests.conftest import OWNERS
from tests.integration.test_cli_support import eventually
from tests.served import Served, get

WORKERS = 2
CLIENTS = 8
ECHO = "def handler(e):\n    return e.get('i')\n"
LEFT_BEHIND = 8  # containers a dead run left one worker: removing them delays its start
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def served(
    runtime_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The supervisor and its workers, without stem cells (containers are only functions')."""
    with running(tmp_path_factory.mktemp("workers") / "data", WORKERS) as platform:
        yield platform


@contextlib.contextmanager
def running(data: Path, workers: int) -> Iterator[Served]:
    """`nimbus serve --workers N` without stem cells, stopped at the end."""
    OWNERS.update(worker_owner(data, index) for index in range(workers))
    flags = ("--workers", str(workers), "--stem-cells", "0", "--stem-cells", "nodejs:18=0")
    platform = Served(data, *flags).start()
    try:
        yield platform
    finally:
        platform.stop()


def worker_owner(data_dir: Path, index: int) -> str:
    """The owner label of worker `index`'s containers (as `worker_config` sets it)."""
    return Config(data_dir=data_dir, worker=str(index)).owner


def owned_name(prefix: str, worker: int) -> str:
    """The first `<prefix><n>` that `worker` owns."""
    return next(
        name for n in itertools.count() if owner_of(name := f"{prefix}{n}", WORKERS) == worker
    )


def deploy(served: Served, name: str, concurrency: int) -> None:
    """Deploy ECHO as `name`, `concurrency` calls at a time per container."""
    body = {"handler": "main.handler", "code": {"source": ECHO}, "concurrency": concurrency}
    status, payload = served.call("PUT", f"/v1/functions/{name}", body)
    assert status == 201, (status, payload)


def invoke(served: Served, name: str, i: int) -> None:
    """One synchronous call (a new connection) that must answer `i`."""
    status, body = served.call("POST", f"/v1/functions/{name}/invoke", {"i": i})
    assert (status, body) == (200, i)


def containers(
    client: docker.DockerClient, owners: set[str], function: str | None = None
) -> list[dict[str, Any]]:
    """The containers (running or not) of these owners, of one function if given."""
    labels = ["io.nimbus.managed"] + ([f"io.nimbus.function={function}"] if function else [])
    found = client.api.containers(all=True, filters={"label": labels})
    return [c for c in found if c["Labels"]["io.nimbus.managed"] in owners]


def activations(served: Served, function: str) -> list[dict[str, Any]]:
    """Every activation of `function` (well under the listing's cap of 1,000)."""
    return list(get(f"{served.url}/v1/activations?function={function}&limit=1000")["activations"])


def recorded(served: Served, function: str, count: int) -> list[dict[str, Any]]:
    """The function's activations, read once right after its `count` calls were answered:
    a read on either worker must see every one (no waiting: read-your-writes)."""
    acts = activations(served, function)
    assert len(acts) == count, (function, len(acts), count)
    return acts


def owners_of(served: Served) -> dict[int, str]:
    """Each worker's owner label, by index."""
    return {index: worker_owner(served.data_dir, index) for index in range(WORKERS)}


def worker_pid(served: Served, index: int) -> int | None:
    """The pid of the supervisor's child listening on worker `index`'s handover socket."""
    assert served.proc is not None
    path = str(handover_socket(run_dir_for(served.data_dir), index))
    with open("/proc/net/unix") as table:  # Num RefCount Protocol Flags Type St Inode Path
        inodes = {f"socket:[{r[6]}]" for r in map(str.split, table) if r[-1:] == [path]}
    ran = subprocess.run(["pgrep", "-P", str(served.proc.pid)], capture_output=True, text=True)
    for pid in map(int, ran.stdout.split()):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fds = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fds / fd) in inodes for fd in os.listdir(fds)):
                return pid
    return None


def listening(path: Path) -> bool:
    """Whether something accepts connections on the unix socket at `path`."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def test_a_data_dir_too_long_for_sockets_still_has_one_owner_per_function(
    runtime_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
) -> None:
    # Its run dir is then a temporary one: every worker must find the others' handover
    # sockets there, or each serves the calls that land on it with containers of its own.
    data = tmp_path_factory.mktemp("w" * 70) / "data"
    assert len(str((data / "run").resolve())) > MAX_RUN_DIR_CHARS
    OWNERS.update(worker_owner(data, index) for index in range(WORKERS))
    flags = ("--workers", str(WORKERS), "--stem-cells", "0", "--stem-cells", "nodejs:18=0")
    platform = Served(data, *flags).start()
    try:
        name = owned_name("long", 1)
        deploy(platform, name, concurrency=CLIENTS)
        invoke(platform, name, -1)
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda i: invoke(platform, name, i), range(24)))
        mine = {worker_owner(data, index): index for index in range(WORKERS)}
        found = containers(docker_client, set(mine), name)
        assert [mine[c["Labels"]["io.nimbus.managed"]] for c in found] == [1]
    finally:
        platform.stop()


def left_behind(client: docker.DockerClient, image: str, owner: str) -> str:
    """A running container labelled as `owner`'s, as a run that died leaves them; its id."""
    sleep = ["python3", "-c", "import time; time.sleep(120)"]
    made = client.api.create_container(
        image, sleep, entrypoint=[], labels={"io.nimbus.managed": owner}
    )
    client.api.start(made["Id"])
    return str(made["Id"])


def test_the_port_takes_calls_once_every_worker_takes_handed_over_ones(
    runtime_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
) -> None:
    # Worker 0 starts late: it first removes the containers a run that died left it. A call
    # taken meanwhile by worker 1 for a function worker 0 owns would run there (its owner
    # unreachable): a second warm pool for the function, and cold starts at its owner.
    data = tmp_path_factory.mktemp("late") / "data"
    owners = {index: worker_owner(data, index) for index in range(WORKERS)}
    OWNERS.update(owners.values())
    image = runtime_images["python:3.11"]
    left = {left_behind(docker_client, image, owners[0]) for _ in range(LEFT_BEHIND)}
    flags = ("--workers", str(WORKERS), "--stem-cells", "0", "--stem-cells", "nodejs:18=0")
    platform = Served(data, *flags).start()
    try:
        sockets = [handover_socket(run_dir_for(data), index) for index in range(WORKERS)]
        assert [listening(sock) for sock in sockets] == [True] * WORKERS
        name = owned_name("late", 0)
        deploy(platform, name, concurrency=1)
        invoke(platform, name, 1)
        found = containers(docker_client, set(owners.values()), name)
        assert [c["Labels"]["io.nimbus.managed"] for c in found] == [owners[0]]
        assert not left & {c["Id"] for c in containers(docker_client, {owners[0]})}
    finally:
        platform.stop()


def test_calls_on_any_worker_reach_one_warm_container_per_function(
    served: Served, docker_client: docker.DockerClient
) -> None:
    names = [owned_name("warm-a", 0), owned_name("warm-b", 1), owned_name("warm-c", 0)]
    for name in names:
        deploy(served, name, concurrency=CLIENTS)
    # One first call each: a call that waits for a starting container counts as cold
    # (invoker/call_path.py), so a burst of first calls would show several per container.
    first = [(name, -1) for name in names]
    calls = [(names[k % len(names)], k) for k in range(60)]
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        for batch in (first, calls):
            list(pool.map(lambda call: invoke(served, *call), batch))
    owners = owners_of(served)
    for name in names:
        # The listing lands on either worker and sees every call already answered.
        acts = recorded(served, name, 1 + len(calls) // len(names))
        assert all(a["status"] == "success" for a in acts)
        colds = [
            (a["start"], a["init_ms"], a["wait_ms"], a["node"]) for a in acts if a["cold_start"]
        ]
        assert len(colds) == 1, (name, sorted(colds))  # when, how long each waited, where
        # One container, its owner's: no other worker started one for a call it took.
        running = containers(docker_client, set(owners.values()), name)
        labels = [c["Labels"]["io.nimbus.managed"] for c in running]
        assert labels == [owners[owner_of(name, WORKERS)]], (name, labels)


def test_async_calls_over_both_workers_run_exactly_once(served: Served) -> None:
    calls = 100
    deploy(served, "tally", concurrency=4)

    def accept(i: int) -> str:
        status, body = served.call("POST", "/v1/functions/tally/invoke?async=true", {"i": i})
        assert status == 202, (status, body)
        return str(body["activation_id"])

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        ids = list(pool.map(accept, range(calls)))
    done = eventually(
        lambda: (
            len(acts := activations(served, "tally")) == calls
            and all(a["status"] == "success" for a in acts)
            and acts
        ),
        timeout=40,
    )
    assert sorted(a["activation_id"] for a in done) == sorted(ids)  # each once, none more
    assert sorted(a["result"] for a in done) == list(range(calls))
    assert all(a["attempts"] == 1 for a in done)
    bill = get(f"{served.url}/v1/billing?group_by=function")
    assert {line["key"]: line["invocations"] for line in bill["lines"]}["tally"] == calls
    with contextlib.closing(sqlite3.connect(served.data_dir / "nimbus.db")) as db:
        billed = Counter(row[0] for row in db.execute("SELECT activation_id FROM usage"))
        queued = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
    assert {i: billed[i] for i in ids} == dict.fromkeys(ids, 1) and queued == 0


def test_async_calls_run_on_the_worker_owning_their_function_exactly_once(
    served: Served, docker_client: docker.DockerClient
) -> None:
    # A trigger's fire lands on either worker and queues a call for every rule's function
    # there; async invokes are handed to the owner first. Either way, the owner runs it.
    names = [owned_name(f"fan{letter}", worker) for letter in "ab" for worker in range(WORKERS)]
    for name in names:
        deploy(served, name, concurrency=4)
    assert served.call("PUT", "/v1/triggers/spread", {"type": "http"})[0] == 201
    for name in names:
        rule = {"trigger": "spread", "function": name}
        assert served.call("PUT", f"/v1/rules/to-{name}", rule)[0] == 201

    def fire(i: int) -> list[str]:
        status, body = served.call("POST", "/v1/triggers/spread/fire", {"i": i})
        assert status == 202 and len(body["activation_ids"]) == len(names), (status, body)
        return list(body["activation_ids"])

    def accept(call: tuple[str, int]) -> list[str]:
        name, i = call
        status, body = served.call("POST", f"/v1/functions/{name}/invoke?async=true", {"i": i})
        assert status == 202, (status, body)
        return [str(body["activation_id"])]

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        fired = list(pool.map(fire, range(12)))
        invoked = list(pool.map(accept, [(name, i) for i in range(5) for name in names]))
    ids = sorted(aid for batch in fired + invoked for aid in batch)
    assert len(ids) == len(set(ids)) == 12 * len(names) + 5 * len(names)

    def settled() -> list[dict[str, Any]] | None:
        acts = [a for name in names for a in activations(served, name)]
        done = len(acts) == len(ids) and all(a["status"] == "success" for a in acts)
        return acts if done else None

    done = eventually(settled, timeout=60)
    assert sorted(a["activation_id"] for a in done) == ids  # each once, none more
    assert all(a["attempts"] == 1 for a in done)
    owners = owners_of(served)
    for name in names:
        # Only the owner ran it: no other worker started a container for a call it took.
        labels = {
            c["Labels"]["io.nimbus.managed"]
            for c in containers(docker_client, set(owners.values()), name)
        }
        assert labels == {owners[owner_of(name, WORKERS)]}, (name, labels)
    assert served.call("DELETE", "/v1/triggers/spread")[0] == 200


def test_a_killed_worker_is_replaced_and_its_containers_removed(
    served: Served, docker_client: docker.DockerClient
) -> None:
    victim = 1
    name = owned_name("phoenix", victim)
    deploy(served, name, concurrency=1)
    invoke(served, name, 1)
    owners = owners_of(served)
    before = {c["Id"] for c in containers(docker_client, {owners[victim]})}
    assert len(containers(docker_client, {owners[victim]}, name)) == 1
    pid = worker_pid(served, victim)
    assert pid is not None, "no worker listens on the handover socket"
    os.kill(pid, signal.SIGKILL)
    sock = handover_socket(run_dir_for(served.data_dir), victim)
    eventually(lambda: worker_pid(served, victim) not in (None, pid) and listening(sock))
    status, body = served.call("POST", f"/v1/functions/{name}/invoke", {"i": 2})
    assert (status, body) == (200, 2)
    # The replacement removed what its predecessor left, and runs the function again.
    eventually(
        lambda: not before & {c["Id"] for c in containers(docker_client, set(owners.values()))}
    )
    after = containers(docker_client, set(owners.values()), name)
    assert [c["Labels"]["io.nimbus.managed"] for c in after] == [owners[victim]]
    for i in range(3, 8):
        invoke(served, name, i)
    assert sum(bool(a["cold_start"]) for a in activations(served, name)) == 2


def test_sigterm_stops_every_worker_and_removes_every_container(
    served: Served, docker_client: docker.DockerClient
) -> None:
    for worker in range(WORKERS):  # a container in each worker, whatever ran before
        name = owned_name("last", worker)
        deploy(served, name, concurrency=1)
        invoke(served, name, worker)
    owners = set(owners_of(served).values())
    assert {c["Labels"]["io.nimbus.managed"] for c in containers(docker_client, owners)} == owners
    assert served.proc is not None
    supervisor = served.proc.pid
    served.stop()
    assert served.proc.returncode == 0
    ran = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True)
    assert ran.stdout == ""
    assert containers(docker_client, owners) == []
    assert not served.healthy()  # nothing listens on the port any more
