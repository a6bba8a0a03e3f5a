"""Async invocations: durable queue, retries, dead letter, and survival of a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, Api, free_port, serve


async def wait_for_status(
    api: Api, activation_id: str, statuses: set[str], timeout: float = 30.0
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, act, _ = await api.call("GET", f"/v1/activations/{activation_id}")
        assert status == 200, act
        if act["status"] in statuses:
            return act
        assert time.monotonic() < deadline, f"still {act['status']}"
        await asyncio.sleep(0.05)


async def test_async_invoke_returns_202_then_runs(api: Api) -> None:
    await api.deploy(
        "later", "import time\ndef handler(e):\n    time.sleep(0.3)\n    return e['n'] * 2\n"
    )
    status, body, headers = await api.call(
        "POST", "/v1/functions/later/invoke?async=true", {"n": 21}
    )
    assert status == 202, body
    activation_id = body["activation_id"]
    assert headers["Location"] == f"/v1/activations/{activation_id}"
    _, act, _ = await api.call("GET", f"/v1/activations/{activation_id}")
    assert act["status"] in ("pending", "running")
    act = await wait_for_status(api, activation_id, {"success"})
    assert act["result"] == 42 and act["attempts"] == 1
    # OpenWhisk's spelling works too.
    status, body, _ = await api.call("POST", "/v1/functions/later/invoke?blocking=false", {"n": 1})
    assert status == 202
    assert (await wait_for_status(api, body["activation_id"], {"success"}))["result"] == 2
    status, body, _ = await api.call("POST", "/v1/functions/later/invoke?async=maybe", {})
    assert status == 400 and body["error"]["field"] == "async"
    status, _, _ = await api.call("POST", "/v1/functions/nope/invoke?async=true", {})
    assert status == 404


FLAKY = """
import os
def handler(e):
    marker = "/tmp/seen-" + e["id"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "ok on retry"
"""


@pytest.mark.platform(async_backoff_s=0.1)
async def test_retry_then_success_and_dead_letter(api: Api) -> None:
    await api.deploy("flaky", FLAKY)
    _, body, _ = await api.call("POST", "/v1/functions/flaky/invoke?async=true", {"id": "a"})
    act = await wait_for_status(api, body["activation_id"], {"success", "application_error"})
    assert act["status"] == "success" and act["result"] == "ok on retry" and act["attempts"] == 2
    assert act["dead_letter"] is False

    await api.deploy("broken", "def handler(e):\n    raise ValueError('always')\n")
    _, body, _ = await api.call("POST", "/v1/functions/broken/invoke?async=true", {})
    act = await wait_for_status(api, body["activation_id"], {"success", "application_error"})
    assert act["status"] == "application_error" and act["dead_letter"] is True
    assert act["attempts"] == 3
    assert "always" in act["error"] and "3 attempts" in act["error"]
    # Every attempt ran and is billed.
    _, bill, _ = await api.call("GET", "/v1/billing")
    lines = {line["key"]: line for line in bill["lines"]}
    assert lines["broken"]["invocations"] == 3 and lines["flaky"]["invocations"] == 2


def post(url: str, body: object, method: str = "POST") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method)
    req.add_header("Authorization", f"Bearer {ADMIN_KEY}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, json.loads(resp.read())


def get(url: str) -> dict:
    req = urllib.request.Request(url)
    req.add_header("Authorization", f"Bearer {ADMIN_KEY}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def test_accepted_calls_survive_sigkill(runtime_images, tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(data_dir, port)
    ids: list[str] = []
    try:
        source = "import time\ndef handler(e):\n    time.sleep(0.05)\n    return e['i']\n"
        body = {"handler": "main.handler", "code": {"source": source}, "concurrency": 4}
        assert post(f"{url}/v1/functions/d", body, "PUT")[0] == 201
        for i in range(200):
            status, accepted = post(f"{url}/v1/functions/d/invoke?async=true", {"i": i})
            assert status == 202
            ids.append(accepted["activation_id"])
        # Let some run, then kill the platform mid-way.
        deadline = time.monotonic() + 30
        while (
            sum(
                a["status"] == "success"
                for a in get(f"{url}/v1/activations?function=d&limit=1000")["activations"]
            )
            < 20
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = serve(data_dir, port)
    try:
        deadline = time.monotonic() + 120
        while True:
            acts = get(f"{url}/v1/activations?function=d&limit=1000")["activations"]
            if all(a["status"] == "success" for a in acts) and len(acts) == 200:
                break
            assert time.monotonic() < deadline, "not every accepted call completed"
            time.sleep(0.2)
        assert sorted(a["activation_id"] for a in acts) == sorted(ids)  # each exactly once
        assert sorted(a["result"] for a in acts) == list(range(200))
        assert get(f"{url}/v1/functions/d")["version"] == 1  # healthy after recovery
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
