"""The fault suite: the platform killed, a container killed, the disk full, dockerd restarted.

Each test is bounded in time and in the number of calls; each runs on real Docker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import Api, Running, start_platform
from tests.engine2 import CERTS, PORT, ensure_engine2, ours, running_engine2, stop_engine2
from tests.served import Served, get
from tests.small_disk import fill, small_disk

CALLS = 1000


@pytest.fixture(scope="module")
def engine2() -> Iterator[docker.DockerClient]:
    """The second Docker engine (tests/engine2.py)."""
    yield from running_engine2()


CHEAP = "def handler(e):\n    return e['i']\n"


def accept_all(served: Served, function: str, count: int) -> list[str]:
    """Enqueue `count` async calls with events {"i": 0..count-1}; their activation ids."""

    def one(i: int) -> str:
        status, body = served.call("POST", f"/v1/functions/{function}/invoke?async=true", {"i": i})
        assert status == 202, (status, body)
        return str(body["activation_id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def activations(served: Served, function: str) -> list[dict[str, Any]]:
    """Every activation of `function` (the listing's cap is 1,000: one page is enough)."""
    return list(get(f"{served.url}/v1/activations?function={function}&limit=1000")["activations"])


def finished(acts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The successful ones by id."""
    return {a["activation_id"]: a for a in acts if a["status"] == "success"}


def test_sigkill_during_1000_async_calls_loses_and_repeats_none(
    runtime_images: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    served = Served(tmp_path / "data").start()
    try:
        body = {"handler": "main.handler", "code": {"source": CHEAP}, "concurrency": 4}
        assert served.call("PUT", "/v1/functions/d", body)[0] == 201
        ids = accept_all(served, "d", CALLS)
        # Kill it once a share has completed and most has not.
        deadline = time.monotonic() + 30
        while len(done := finished(activations(served, "d"))) < CALLS // 10:
            assert time.monotonic() < deadline, f"only {len(done)} calls completed in 30 s"
            time.sleep(0.02)
    finally:
        served.kill()
    assert len(done) < CALLS, "every call had completed before the kill: nothing was tested"
    served.start()
    try:
        deadline = time.monotonic() + 60
        while len(finished(acts := activations(served, "d"))) < CALLS:
            assert time.monotonic() < deadline, f"{CALLS - len(finished(acts))} calls lost"
            time.sleep(0.2)
    finally:
        served.stop()
    # One activation per accepted call, each successful, each event's result exactly once.
    assert sorted(a["activation_id"] for a in acts) == sorted(ids)
    assert sorted(a["result"] for a in acts) == list(range(CALLS))
    # A call that had completed before the kill did not run again after it.
    after = finished(acts)
    assert {i: (a["end"], a["attempts"]) for i, a in done.items()} == {
        i: (after[i]["end"], after[i]["attempts"]) for i in done
    }
    # Each call was billed for exactly one completed run (one usage record per activation).
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "nimbus.db")) as db:
        billed = Counter(r[0] for r in db.execute("SELECT activation_id FROM usage"))
        queue = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
    assert billed == Counter(ids) and queue == 0
    rerun = sum(a["attempts"] > 1 for a in acts)
    print(
        f"\n[faults] sigkill after {len(done)} of {CALLS} calls ({rerun} rerun after it): "
        f"{time.monotonic() - started:.1f} s"
    )


SLOW = "import time\ndef handler(e):\n    time.sleep(e.get('s', 0))\n    return 'done'\n"
HOG = "def handler(e):\n    hog = b'x' * (300 * 2**20)\n    return len(hog)\n"


def function_containers(
    client: docker.DockerClient, platform: Running, name: str
) -> list[dict[str, Any]]:
    """The platform's running containers of one function."""
    labels = [f"io.nimbus.managed={platform.config.owner}", f"io.nimbus.function={name}"]
    return list(client.api.containers(filters={"label": labels}))


async def kill_mid_call(
    platform: Running, client: docker.DockerClient
) -> tuple[int, dict[str, Any], str]:
    """Start a 10 s call of `slow`, `docker kill` its container at 1 s: the call's answer,
    and the id of the killed container."""
    api = platform.api
    await api.deploy("slow", SLOW, timeout_s=30)
    call = asyncio.create_task(api.invoke("slow", {"s": 10}))
    deadline = time.monotonic() + 20
    while not (running := function_containers(client, platform, "slow")):
        assert time.monotonic() < deadline and not call.done(), "no container started"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # well inside the call: /run is waiting on the function
    assert not call.done()
    killed = str(running[0]["Id"])
    await asyncio.to_thread(client.api.kill, killed)
    async with asyncio.timeout(10):  # answered when the container dies, not at the timeout
        status, body, _ = await call
    return status, body, killed


async def test_container_killed_mid_call_answers_502_and_recovers(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    started = time.monotonic()
    api = platform.api
    status, body, killed = await kill_mid_call(platform, docker_client)
    assert status == 502, body
    error = body["error"]
    assert error["type"] == "application_error"
    # It says what happened: the container was killed, not that it ran out of memory.
    message = error["message"].lower()
    assert "killed" in message or "exited" in message, message
    assert "out of memory" not in message, message
    # The activation is recorded with the same error.
    code, act, _ = await api.call("GET", f"/v1/activations/{error['activation_id']}")
    assert code == 200 and act["status"] == "application_error", act
    assert act["error"] == error["message"]
    # The next call runs in a new container: the killed one is dropped, not reused.
    status, result, headers = await api.invoke("slow", {"s": 0})
    assert (status, result) == (200, "done")
    assert headers["X-Nimbus-Cold-Start"] == "true"
    now = [c["Id"] for c in function_containers(docker_client, platform, "slow")]
    assert now and killed not in now
    print(f"\n[faults] container killed mid-call: {time.monotonic() - started:.1f} s")


async def test_memory_blow_up_is_reported_as_out_of_memory(
    platform: Running, docker_client: docker.DockerClient
) -> None:
    started = time.monotonic()
    api = platform.api
    await api.deploy("hog", HOG, memory_mb=128)
    async with asyncio.timeout(30):
        status, body, _ = await api.invoke("hog")
    assert status == 502, body
    assert "out of memory" in body["error"]["message"].lower(), body
    print(f"\n[faults] memory blow-up: {time.monotonic() - started:.1f} s")


def source_of(size: int, n: int) -> str:
    """A function whose source is `size` bytes of incompressible comment (version `n`)."""
    noise = os.urandom(size // 2).hex()
    return f"# {noise}\ndef handler(e):\n    return {n}\n"


def test_disk_full_answers_503_and_loses_nothing_acknowledged(
    runtime_images: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    with small_disk(tmp_path / "disk", "8m") as disk:
        served = Served(disk / "data", log=tmp_path / "gateway.log").start()
        try:
            acked, version = fill_and_drive(served, disk / "filler")
            # Space freed: the same gateway works again, without a restart.
            (disk / "filler").unlink()
            status, body = served.call("PUT", "/v1/functions/g", code(source_of(8000, -1)))
            assert status in (200, 201) and body["version"] == version + 1, body
            version += 1
            assert served.call("POST", "/v1/functions/f/invoke", {"i": -1}) == (200, -1)
            status, body = served.call("POST", "/v1/functions/f/invoke?async=true", {"i": -2})
            assert status == 202, body
            acked.append(body["activation_id"])
        finally:
            served.stop()
        for name in ("nimbus.db",):  # objects' metadata is in nimbus.db too
            with contextlib.closing(sqlite3.connect(disk / "data" / name)) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], name
        # A restart runs the calls whose completion the full disk kept from being saved
        # (without one, their leases run out first); every acknowledged write is there.
        served.start()
        try:
            assert served.call("GET", "/v1/functions/g")[1]["version"] == version
            wait_until_done(served, "f", acked, 30.0)
        finally:
            served.stop()
    print(f"\n[faults] disk full: {time.monotonic() - started:.1f} s")


def code(source: str) -> dict[str, Any]:
    """The body of a function PUT with this source."""
    return {"handler": "main.handler", "code": {"source": source}}


def wait_until_done(served: Served, function: str, ids: list[str], timeout: float) -> None:
    """Wait until every one of `ids` completed successfully."""
    deadline = time.monotonic() + timeout
    while missing := set(ids) - set(finished(activations(served, function))):
        assert time.monotonic() < deadline, f"{len(missing)} acknowledged calls never completed"
        time.sleep(0.2)


def fill_and_drive(served: Served, filler: Path) -> tuple[list[str], int]:
    """Fill the disk under deploys and calls until the store refuses some: each answer is a
    success or the storage-full 503, never a hang, and the gateway stays up.

    Returns the async calls it accepted (202) and the last version of `g` deployed.
    """
    assert served.call("PUT", "/v1/functions/f", code(CHEAP))[0] == 201
    acked = [str(accept(served, i)) for i in range(5)]
    wait_until_done(served, "f", acked, 20.0)
    # Some room left: the first deploys and calls fit, then the disk fills up under them.
    fill(filler, leave=64 * 1024)
    refused, version = 0, 0
    for n in range(100):
        status, body = served.call("PUT", "/v1/functions/g", code(source_of(8000, n)), timeout=10)
        if storage_full(status, body, {200, 201}):
            refused += 1
        else:
            version = body["version"]
        if (activation_id := accept(served, 100 + n)) is not None:
            acked.append(activation_id)
        status, body = served.call("POST", "/v1/functions/f/invoke", {"i": n}, timeout=10)
        assert storage_full(status, body, {200}) or body == n
        assert served.alive() and served.healthy()
        if refused >= 3:
            break
    assert refused >= 3 and version > 0, f"{version} deploys fitted, {refused} were refused"
    assert served.call("GET", "/v1/functions/f")[0] == 200  # reads work on a full disk
    return acked, version


def accept(served: Served, i: int) -> str | None:
    """An async call of `f`: its activation id, or None when the disk full refused it."""
    status, body = served.call("POST", "/v1/functions/f/invoke?async=true", {"i": i}, timeout=10)
    return None if storage_full(status, body, {202}) else str(body["activation_id"])


def storage_full(status: int, body: dict[str, Any], ok: set[int]) -> bool:
    """Whether the answer is the storage-full 503; otherwise it must be a success."""
    if status in ok:
        return False
    assert status == 503, (status, body)
    assert "storage is full" in body["error"]["message"], body
    return True


CALL_BOUND_S = 20.0  # no call may take longer, fault or not: longer is a hang
RECOVERY_S = 30.0


async def drive(api: Api, function: str, answers: list[Answer], stop: asyncio.Event) -> None:
    """Call `function` in a loop until `stop` (or 2,000 calls), recording every answer."""
    for _ in range(2000):
        if stop.is_set():
            return
        i, sent = len(answers), time.monotonic()
        async with asyncio.timeout(CALL_BOUND_S):
            status, body, _ = await api.invoke(function, {"i": i})
        answers.append(Answer(sent, time.monotonic() - sent, status, body, i))
        if status != 200:
            await asyncio.sleep(0.1)  # a failing platform is not hammered in a tight loop


@dataclass(frozen=True)
class Answer:
    """One call of the load and what it answered."""

    sent: float
    took: float
    status: int
    body: Any
    i: int

    def clean(self) -> bool:
        """Its own result, or a throttle / platform failure in the JSON error shape whose
        message does not show the tenant the engine's address."""
        if self.status == 200:
            return bool(self.body == self.i)
        error = self.body.get("error") if isinstance(self.body, dict) else None
        message = str(error.get("message") or "") if isinstance(error, dict) else ""
        return (
            (self.status == 429 or 502 <= self.status < 600)
            and bool(message)
            and f":{PORT}" not in message
        )


def recovered(answers: list[Answer], since: float, run: int = 5) -> bool:
    """Whether the last `run` calls, all sent after `since`, succeeded."""
    last = answers[-run:]
    return len(last) == run and all(a.sent >= since and a.status == 200 for a in last)


async def test_dockerd_restart_under_load_recovers_without_leaking(
    runtime_images: dict[str, str], engine2: docker.DockerClient, tmp_path: Path
) -> None:
    started = time.monotonic()
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(
        f'[[host]]\nid = "vm-2"\nurl = "tcp://127.0.0.1:{PORT}"\ntls = "{CERTS}"\n'
        "vcpu = 1\nmemory_mb = 512\n"
    )
    runner, running = await start_platform(
        tmp_path / "data",
        vm_provider="docker-hosts",
        docker_hosts_file=hosts,
        min_nodes=1,
        max_nodes=1,
        stem_cells=(),
    )
    api, owner, stop = running.api, running.config.owner, asyncio.Event()
    answers: list[Answer] = []
    try:
        await api.deploy("w", CHEAP, timeout_s=5)
        assert (await api.invoke("w", {"i": 0}))[:2] == (200, 0)
        load = [asyncio.create_task(drive(api, "w", answers, stop)) for _ in range(2)]
        await asyncio.sleep(1.0)  # warm calls on the engine's container
        down = time.monotonic()
        await asyncio.to_thread(stop_engine2, keep_containers=True)
        await asyncio.to_thread(ensure_engine2)
        back = time.monotonic()
        while not recovered(answers, back) and time.monotonic() < back + RECOVERY_S:
            assert not any(t.done() for t in load), [t.exception() for t in load if t.done()]
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*load)
    finally:
        stop.set()
        await api.session.close()
        await runner.cleanup()
    during = [a for a in answers if down <= a.sent < back]
    summary = Counter(a.status for a in during)
    assert all(a.clean() for a in answers), [a for a in answers if not a.clean()][:5]
    assert any(a.status != 200 for a in during), f"no call failed while dockerd was down: {summary}"
    assert recovered(answers, back), f"no recovery within {RECOVERY_S:g} s: {answers[-5:]}"
    # The containers the restart stopped (and the new ones) are all gone after a clean stop.
    assert ours(engine2, owner, stopped=True) == []
    first_ok = min(a.sent + a.took for a in answers if a.sent >= back and a.status == 200)
    print(
        f"\n[faults] dockerd restart: down {back - down:.1f} s, answers then {dict(summary)}, "
        f"serving again {first_ok - back:.1f} s after it was back, "
        f"{len(answers)} calls, {time.monotonic() - started:.1f} s"
    )
