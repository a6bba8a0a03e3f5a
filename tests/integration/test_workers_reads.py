"""`nimbus serve --workers 2` on real Docker: a read sees every call already answered.

A synchronous call's records are committed by the worker that ran it shortly after its
answer; a read the kernel gives to the other worker must still see the call (activations
by id and listed, their logs, the bill; native and OpenWhisk forms). No sleeps, no
retries: each read comes right after the call's answer, on a fresh connection.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from gateway.peer_commits import COMMIT_PATH
from tests.conftest import ADMIN_KEY
from tests.integration import test_workers
from tests.integration.test_workers import ECHO, owned_name
from tests.served import Served

pytestmark = pytest.mark.timeout(180)
served = test_workers.served  # the fixture: this module's own supervisor and two workers
ROUNDS = 20


def fetch(served: Served, method: str, path: str, auth: str, body: object = None) -> Any:
    """One request on a new connection: (status, JSON body, activation id header)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(served.url + path, data=data, method=method)
    req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            raw, status, headers = answer.read(), answer.status, answer.headers
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, exc.headers
    return status, json.loads(raw) if raw else None, headers.get("X-Nimbus-Activation-Id")


def reads_of(name: str, activation_id: str, calls: int) -> dict[str, Any]:
    """What each read must show right after the call: (path, auth kind, check of the body)."""
    ns = "/api/v1/namespaces/_/activations"

    def invocations(bill: dict[str, Any]) -> int:
        return sum(line["invocations"] for line in bill["lines"] if line["key"] == name)

    return {
        f"/v1/activations/{activation_id}": lambda b: b["activation_id"] == activation_id,
        f"/v1/activations?function={name}&limit=1": lambda b: (
            [a["activation_id"] for a in b["activations"]] == [activation_id]
        ),
        "/v1/billing?group_by=function": lambda b: invocations(b) == calls,
        f"{ns}/{activation_id}/logs": lambda b: isinstance(b["logs"], list),
        f"{ns}?name={name}&limit=1": lambda b: [a["activationId"] for a in b] == [activation_id],
    }


def test_a_read_on_any_worker_sees_every_call_already_answered(served: Served) -> None:
    status, tenant = served.call("POST", "/v1/tenants", {"name": "readers"})
    assert status == 201, tenant
    bearer = f"Bearer {tenant['api_key']}"
    basic = "Basic " + base64.b64encode(tenant["openwhisk"]["auth"].encode()).decode()
    names = [owned_name("reads-a", 0), owned_name("reads-b", 1)]
    calls = dict.fromkeys(names, 0)
    for name in names:
        body = {"handler": "main.handler", "code": {"source": ECHO}}
        status, answer, _ = fetch(served, "PUT", f"/v1/functions/{name}", bearer, body)
        assert status == 201, answer
    misses: list[str] = []
    reads = 0
    for i in range(ROUNDS):
        for name in names:
            status, answer, activation_id = fetch(
                served, "POST", f"/v1/functions/{name}/invoke", bearer, {"i": i}
            )
            assert (status, answer) == (200, i) and activation_id
            calls[name] += 1
            for path, shows in reads_of(name, activation_id, calls[name]).items():
                auth = basic if path.startswith("/api/") else bearer
                status, answer, _ = fetch(served, "GET", path, auth)
                reads += 1
                if status != 200 or not shows(answer):
                    misses.append(f"round {i} {path}: {status} {str(answer)[:120]}")
    assert not misses, f"{len(misses)} of {reads} reads missed the call: {misses[:5]}"


def test_the_commit_route_is_not_served_on_the_public_port(served: Served) -> None:
    for auth in (f"Bearer {ADMIN_KEY}", ""):
        for method in ("POST", "GET"):
            status, answer, _ = fetch(served, method, COMMIT_PATH, auth)
            assert status == 404, (method, auth, status, answer)
