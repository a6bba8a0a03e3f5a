"""Async invocations: durable queue, retries, dead letter.

Survival of a SIGKILL (1,000 calls, none lost or repeated) is in test_faults.py.
"""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.served import wait_for_status


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
