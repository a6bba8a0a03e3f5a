"""The OpenWhisk API's activations, triggers and rules over HTTP, on real Docker; and the
action fields that ride on native ones (parameters, annotations, web, sequences)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from gateway.schemas import FUNCTION_FIELDS
from tests.conftest import Api
from tests.openwhisk_client.ow import Ow, is_ow_error, tenant_with_credential

ECHO = "def main(args):\n    print('got', sorted(args))\n    return args\n"


def by_key(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenWhisk's `[{"key", "value"}]` as an object (the store keeps no order)."""
    return {p["key"]: p["value"] for p in pairs}


def needs_native(field: str) -> pytest.MarkDecorator:
    """Skip until `PUT /v1/functions` takes `field` (another change adds it)."""
    return pytest.mark.skipif(
        field not in FUNCTION_FIELDS, reason=f"native functions have no {field!r} field yet"
    )


async def test_activations_list_get_logs_result(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owacts")
    await ow.put_action("echo", ECHO)
    await ow.put_action("other", ECHO)
    ids = []
    for n in range(3):
        status, record = await ow.call("POST", ow.ns("actions", "echo"), {"n": n}, blocking=True)
        assert status == 200, record
        ids.append(record["activationId"])
    middle_start = (await ow.activation(ids[1]))["start"]
    status, record = await ow.call("POST", ow.ns("actions", "other"), {}, blocking=True)
    other = record["activationId"]

    status, listed = await ow.call("GET", ow.ns("activations"))
    assert status == 200 and [a["activationId"] for a in listed] == [other, *reversed(ids)]
    brief = listed[1]
    assert brief["name"] == "echo" and brief["statusCode"] == 0
    assert "response" not in brief and "logs" not in brief
    status, named = await ow.call("GET", ow.ns("activations"), name="echo", limit=2, skip=1)
    assert [a["activationId"] for a in named] == [ids[1], ids[0]]
    status, docs = await ow.call("GET", ow.ns("activations"), name="echo", docs=True, limit=1)
    assert docs[0]["response"]["result"] == {"n": 2} and docs[0]["logs"]
    assert await ow.call("GET", ow.ns("activations"), count=True) == (200, {"activations": 4})
    status, since = await ow.call(
        "GET", ow.ns("activations"), name="echo", since=middle_start, upto=middle_start
    )
    assert [a["activationId"] for a in since] == [ids[1]]
    status, body = await ow.call("GET", ow.ns("activations"), count=True, docs=True)
    assert is_ow_error(status, body, 400)

    status, logs = await ow.call("GET", ow.ns("activations", ids[0]) + "/logs")
    assert status == 200 and len(logs["logs"]) == 1
    assert re.match(r"^\S+Z stdout: got \['n'\]$", logs["logs"][0])
    status, result = await ow.call("GET", ow.ns("activations", ids[0]) + "/result")
    assert status == 200 and result == {
        "status": "success",
        "statusCode": 0,
        "success": True,
        "result": {"n": 0},
    }
    assert is_ow_error(*await ow.call("GET", ow.ns("activations", "0" * 32)), 404)
    assert is_ow_error(*await ow.call("GET", ow.ns("activations", "0" * 32) + "/logs"), 404)


async def _fired(ow: Ow, trigger: str, payload: dict[str, object]) -> dict[str, object]:
    status, body = await ow.call("POST", ow.ns("triggers", trigger), payload)
    assert status == 202 and isinstance(body["activationId"], str), body
    record = await ow.activation(body["activationId"])
    return dict(record["response"]["result"])


async def test_triggers_and_rules(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owtrig")
    await ow.put_action("echo", ECHO)
    trigger = {"parameters": [{"key": "source", "value": "sensor"}, {"key": "n", "value": 0}]}
    status, doc = await ow.call("PUT", ow.ns("triggers", "events"), trigger)
    assert status == 200 and doc["name"] == "events" and doc["namespace"] == "owtrig"
    assert by_key(doc["parameters"]) == {"source": "sensor", "n": 0} and doc["rules"] == {}
    assert is_ow_error(*await ow.call("PUT", ow.ns("triggers", "events"), trigger), 409)
    assert is_ow_error(*await ow.call("GET", ow.ns("triggers", "nope")), 404)

    # No rule yet: a fire starts nothing and answers 204, as OpenWhisk.
    assert await ow.call("POST", ow.ns("triggers", "events"), {"n": 1}) == (204, None)

    rule = {"trigger": "/_/events", "action": "/_/echo"}
    status, doc = await ow.call("PUT", ow.ns("rules", "wire"), rule)
    assert status == 200 and doc["status"] == "active", doc
    assert doc["trigger"] == {"name": "events", "path": "owtrig"}
    assert doc["action"] == {"name": "echo", "path": "owtrig"}
    assert is_ow_error(*await ow.call("PUT", ow.ns("rules", "wire"), rule), 409)
    status, body = await ow.call(
        "PUT", ow.ns("rules", "bad"), {"trigger": "nope", "action": "echo"}
    )
    assert is_ow_error(status, body, 400) and "does not exist" in body["error"]
    status, doc = await ow.call("GET", ow.ns("triggers", "events"))
    assert doc["rules"]["owtrig/wire"]["status"] == "active"

    # The fire's payload over the trigger's parameters is the action's input.
    assert await _fired(ow, "events", {"n": 7}) == {"source": "sensor", "n": 7}

    assert await ow.call("POST", ow.ns("rules", "wire"), {"status": "inactive"}) == (200, None)
    status, doc = await ow.call("GET", ow.ns("rules", "wire"))
    assert doc["status"] == "inactive"
    assert await ow.call("POST", ow.ns("triggers", "events"), {"n": 8}) == (204, None)
    assert (await ow.call("POST", ow.ns("rules", "wire"), {"status": "active"}))[0] == 200
    status, body = await ow.call("POST", ow.ns("rules", "wire"), {"status": "sleepy"})
    assert is_ow_error(status, body, 400)
    assert await _fired(ow, "events", {}) == {"source": "sensor", "n": 0}

    assert await ow.call("GET", ow.ns("rules"), count=True) == (200, {"rules": 1})
    status, triggers = await ow.call("GET", ow.ns("triggers"))
    assert [t["name"] for t in triggers] == ["events"]
    status, doc = await ow.call("DELETE", ow.ns("rules", "wire"))
    assert status == 200 and doc["status"] == "inactive"
    assert is_ow_error(*await ow.call("GET", ow.ns("rules", "wire")), 404)
    status, doc = await ow.call("DELETE", ow.ns("triggers", "events"))
    assert status == 200 and doc["name"] == "events"
    assert await ow.call("GET", ow.ns("triggers")) == (200, [])


async def test_trigger_overwrite_keeps_what_is_not_given(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owtrig2")
    notes = [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]
    await ow.call("PUT", ow.ns("triggers", "t"), {"annotations": notes})
    params = [{"key": "a", "value": 1}]
    status, doc = await ow.call(
        "PUT", ow.ns("triggers", "t"), {"parameters": params}, overwrite=True
    )
    assert status == 200 and doc["parameters"] == params and doc["annotations"] == notes


@needs_native("params")
async def test_action_parameters_are_defaults_under_the_call(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owparams")
    params = [{"key": "greeting", "value": "hi"}, {"key": "name", "value": "nobody"}]
    doc = await ow.put_action("echo", ECHO, parameters=params)
    assert by_key(doc["parameters"]) == by_key(params)
    status, result = await ow.call(
        "POST", ow.ns("actions", "echo"), {"name": "ada"}, blocking=True, result=True
    )
    assert (status, result) == (200, {"greeting": "hi", "name": "ada"})


@needs_native("annotations")
async def test_annotations_are_kept_and_web_export_sets_web(api: Api) -> None:
    key, ow = await tenant_with_credential(api, "ownotes")
    notes = [
        {"key": "web-export", "value": True},
        {"key": "raw-http", "value": False},
        {"key": "description", "value": "says hello"},
    ]
    doc = await ow.put_action("hello", ECHO, annotations=notes)
    kept = by_key(doc["annotations"])
    assert kept["description"] == "says hello" and kept["web-export"] is True
    assert kept["exec"] == "python:3"
    status, native, _ = await api.call("GET", "/v1/functions/hello", key=key)
    assert status == 200 and native.get("web") is True and native.get("web_raw") in (False, None)


@needs_native("sequence")
async def test_sequence_action(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owseq")
    await ow.put_action("inc", "def main(a):\n    return {'n': a.get('n', 0) + 1}\n")
    await ow.put_action("dbl", "def main(a):\n    return {'n': a['n'] * 2}\n")
    body = {"exec": {"kind": "sequence", "components": ["/_/inc", "/owseq/dbl"]}}
    status, doc = await ow.call("PUT", ow.ns("actions", "both"), body)
    assert status == 200 and doc["exec"] == {
        "kind": "sequence",
        "components": ["/owseq/inc", "/owseq/dbl"],
    }, doc
    deadline = time.monotonic() + 30
    while True:
        status, result = await ow.call(
            "POST", ow.ns("actions", "both"), {"n": 4}, blocking=True, result=True
        )
        if status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert (status, result) == (200, {"n": 10})
    status, record = await ow.call("POST", ow.ns("actions", "both"), {"n": 1}, blocking=True)
    assert status == 200 and record["response"]["result"] == {"n": 4}
    assert len(record["logs"]) == 2 and all(
        re.fullmatch(r"[0-9a-f]{32}", i) for i in record["logs"]
    )


@needs_native("secret_params")
async def test_an_update_neither_reveals_nor_drops_native_secrets(api: Api) -> None:
    key, ow = await tenant_with_credential(api, "owsecrets")
    params = {"token": "s3cret", "x": 1}
    await api.deploy(
        "guarded",
        ECHO.replace("main", "handler"),
        key=key,
        params=params,
        secret_params=["token"],
        web=True,
        web_secret="letmein",
    )
    status, doc = await ow.call("GET", ow.ns("actions", "guarded"))
    assert status == 200 and "s3cret" not in str(doc) and doc["exec"]["main"] == "handler"
    # The web secret is stored hashed: an update must restate it, not silently drop it.
    path = ow.ns("actions", "guarded")
    status, body = await ow.call("PUT", path, {"limits": {"memory": 128}}, overwrite=True)
    assert is_ow_error(status, body, 400) and "require-whisk-auth" in body["error"]
    notes = [{"key": "web-export", "value": True}, {"key": "require-whisk-auth", "value": "new"}]
    status, doc = await ow.call("PUT", path, {"annotations": notes}, overwrite=True)
    assert status == 200, doc
    status, native, _ = await api.call("GET", "/v1/functions/guarded", key=key)
    assert native["secret_params"] == ["token"] and native["web_secret"] is True
    status, result = await ow.call("POST", path, {}, blocking=True, result=True)
    assert (status, result) == (200, params)  # the secret's value survived the update
