"""Functions without network call the Nimbus API back, as their own tenant only."""

from __future__ import annotations

from tests.conftest import Api

CALLER = """
import json, os, urllib.request, urllib.error

def handler(event, context):
    req = urllib.request.Request(os.environ["NIMBUS_API_URL"] + event["path"])
    req.add_header("Authorization", "Bearer " + os.environ["NIMBUS_API_TOKEN"])
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return {"status": resp.status, "body": json.loads(resp.read()),
                    "same_token": context.api_token == os.environ["NIMBUS_API_TOKEN"]}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code}
"""

OUTSIDE = """
import socket

def handler(event):
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        return "reached the internet"
    except OSError as exc:
        return "no network: " + type(exc).__name__
"""


async def test_function_calls_back_with_its_tenant_token(api: Api) -> None:
    key_a = await api.tenant("caller-a")
    key_b = await api.tenant("other-b")
    await api.deploy("secret-b", "def handler(e):\n    return 1\n", key=key_b)
    await api.deploy("caller", CALLER, key=key_a)
    status, body, _ = await api.invoke("caller", {"path": "/v1/functions"}, key=key_a)
    assert status == 200, body
    assert body["status"] == 200 and body["same_token"] is True
    assert [f["name"] for f in body["body"]["functions"]] == ["caller"]
    # Its token acts as tenant A only: B's function is as absent as any missing one.
    status, body, _ = await api.invoke("caller", {"path": "/v1/functions/secret-b"}, key=key_a)
    assert body == {"status": 404}
    # ...and never as admin.
    status, body, _ = await api.invoke("caller", {"path": "/metrics"}, key=key_a)
    assert body == {"status": 403}


async def test_a_token_expires_and_cannot_be_forged(api: Api) -> None:
    for token in ("nmb_act_eyJ4IjoxfQ.0000", "nmb_act_garbage"):
        status, _, _ = await api.call("GET", "/v1/functions", key=token)
        assert status == 401


async def test_functions_still_have_no_network(api: Api) -> None:
    await api.deploy("outside", OUTSIDE)
    status, body, _ = await api.invoke("outside")
    assert status == 200 and body.startswith("no network"), body
