"""`nimbus serve --workers 2` on real Docker: a sequence's steps run in their functions'
owners, whichever worker owns the sequence, so a step function has one warm pool (its
owner's), and each step is recorded and billed once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from typing import Any

import docker
import pytest

from gateway.step_relay import STEP_PATH
from gateway.workers import owner_of
from tests.conftest import ADMIN_KEY
from tests.integration import test_workers
from tests.integration.test_cli_support import eventually
from tests.integration.test_workers import WORKERS, activations, containers, owned_name, owners_of
from tests.served import Served, get

pytestmark = pytest.mark.timeout(180)
served = test_workers.served  # the fixture: this module's own supervisor and two workers
INC = "def handler(event):\n    return {'n': event['n'] + event.get('step', 1)}\n"
DOUBLE = "def handler(event):\n    return {'n': event['n'] * 2}\n"
CALLS = 6


def put(served: Served, name: str, body: dict[str, Any]) -> None:
    status, answer = served.call("PUT", f"/v1/functions/{name}", body)
    assert status == 201, (status, answer)


def finished(served: Served, activation_id: str) -> dict[str, Any] | None:
    status, act = served.call("GET", f"/v1/activations/{activation_id}")
    done = status == 200 and act["status"] not in ("pending", "running")
    return dict(act) if done else None


def test_each_step_runs_in_its_functions_owner_once(
    served: Served, docker_client: docker.DockerClient
) -> None:
    inc, double, seq = owned_name("inc", 1), owned_name("double", 0), owned_name("seq", 0)
    put(served, inc, {"handler": "main.handler", "code": {"source": INC}, "params": {"step": 1}})
    put(served, double, {"handler": "main.handler", "code": {"source": DOUBLE}})
    put(served, seq, {"sequence": [inc, double, inc]})

    # Synchronous calls (new connections: both workers take some), then one async call.
    for i in range(CALLS):
        status, body = served.call("POST", f"/v1/functions/{seq}/invoke", {"n": i})
        assert (status, body) == (200, {"n": (i + 1) * 2 + 1})
    status, body = served.call("POST", f"/v1/functions/{seq}/invoke?async=true", {"n": 10})
    assert status == 202, body
    queued = eventually(lambda: finished(served, body["activation_id"]), timeout=60)
    assert (queued["status"], queued["result"]) == ("success", {"n": 23})
    # Read at once (either worker): every sequence and step answered is there.
    sequences = activations(served, seq)
    assert len(sequences) == CALLS + 1
    assert all(act["status"] == "success" for act in sequences)

    # Each step its own activation, of the function and with the result the sequence saw.
    steps = [act["logs"] for act in sequences]
    assert all(len(logs) == 3 for logs in steps)
    for logs, act in zip(steps, sequences, strict=True):
        ran = [get(f"{served.url}/v1/activations/{step_id}") for step_id in logs]
        assert [(s["function"], s["status"]) for s in ran] == [
            (inc, "success"),
            (double, "success"),
            (inc, "success"),
        ]
        assert ran[-1]["result"] == act["result"]
    assert len(activations(served, inc)) == 2 * len(sequences)
    assert len(activations(served, double)) == len(sequences)

    # Every step function's containers are its owner's only: one warm container each.
    owners = owners_of(served)
    for name in (inc, double):
        running = containers(docker_client, set(owners.values()), name)
        labels = [c["Labels"]["io.nimbus.managed"] for c in running]
        assert labels == [owners[owner_of(name, WORKERS)]], (name, labels)

    # One usage row per step, none for a sequence; the bill counts each step once.
    step_ids = [step_id for logs in steps for step_id in logs]
    with contextlib.closing(sqlite3.connect(served.data_dir / "nimbus.db")) as db:
        billed = Counter(row[0] for row in db.execute("SELECT activation_id FROM usage"))
    assert {i: billed[i] for i in step_ids} == dict.fromkeys(step_ids, 1)
    assert not any(billed[act["activation_id"]] for act in sequences)
    bill = get(f"{served.url}/v1/billing?group_by=function")
    lines = {line["key"]: line["invocations"] for line in bill["lines"]}
    assert (lines[inc], lines[double], lines.get(seq, 0)) == (
        2 * len(sequences),
        len(sequences),
        0,
    )


def test_the_step_route_is_not_on_the_public_port(served: Served) -> None:
    for key in (ADMIN_KEY, "no-such-key"):
        status, body = served.call("POST", STEP_PATH, {"activation_id": "x"}, key=key)
        assert status == 404, (status, body)
