"""Bad input gets a 400 naming the field, and changes nothing."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import Api

GOOD = {
    "runtime": "python:3.11",
    "handler": "main.handler",
    "code": {"source": "def handler(e):\n    return 1\n"},
}


def with_(**changes: object) -> dict:
    body = dict(GOOD)
    body.update(changes)
    return body


CASES = [
    pytest.param(with_(runtime="cobol:85"), "runtime", id="unknown-runtime"),
    pytest.param(with_(memory_mb=64), "memory_mb", id="memory-too-small"),
    pytest.param(with_(memory_mb=8192), "memory_mb", id="memory-too-large"),
    pytest.param(with_(memory_mb="128"), "memory_mb", id="memory-not-int"),
    pytest.param(with_(timeout_s=0), "timeout_s", id="timeout-too-small"),
    pytest.param(with_(timeout_s=901), "timeout_s", id="timeout-too-large"),
    pytest.param(
        with_(code={"zip": base64.b64encode(b"not a zip").decode()}), "code.zip", id="zip-not-zip"
    ),
    pytest.param(with_(code={"zip": "!!!"}), "code.zip", id="zip-not-base64"),
    pytest.param(with_(handler="main.missing"), "handler", id="handler-missing"),
    pytest.param(with_(handler="nodots"), "handler", id="handler-malformed"),
    pytest.param(with_(code={"source": "def handler(:"}), "code.source", id="syntax-error"),
    pytest.param(with_(code={}), "code", id="no-code"),
    pytest.param(with_(concurrency=0), "concurrency", id="concurrency"),
    pytest.param(with_(env={"A": 1}), "env.A", id="env-value"),
    pytest.param(with_(network="yes"), "network", id="network"),
    pytest.param(with_(memroy_mb=256), "memroy_mb", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "field"), CASES)
async def test_bad_function_is_400_and_stores_nothing(api: Api, body: dict, field: str) -> None:
    status, payload, _ = await api.call("PUT", "/v1/functions/f1", body)
    assert status == 400, payload
    assert payload["error"]["field"] == field
    assert payload["error"]["message"]
    assert (await api.call("GET", "/v1/functions/f1"))[0] == 404


async def test_malformed_json_and_oversized_body(api: Api) -> None:
    status, payload, _ = await api.call("PUT", "/v1/functions/f1", data=b"{not json")
    assert status == 400 and payload["error"]["field"] == "body"
    huge = b'{"x": "' + b"a" * (80 * 2**20) + b'"}'
    status, payload, _ = await api.call("PUT", "/v1/functions/f1", data=huge)
    assert status == 400 and payload["error"]["field"] == "body"
    assert (await api.call("GET", "/v1/functions"))[1] == {"functions": []}


async def test_bad_invoke_bodies(api: Api) -> None:
    await api.deploy("ok", "def handler(e):\n    return e\n")
    status, payload, _ = await api.call("POST", "/v1/functions/ok/invoke", data=b"[1,2")
    assert status == 400 and payload["error"]["field"] == "body"
    status, payload, _ = await api.call("POST", "/v1/functions/ok/invoke", [1, 2])
    assert status == 400 and payload["error"]["field"] == "body"
    status, payload, _ = await api.call(
        "POST", "/v1/functions/ok/invoke", data=b"{" + b" " * (7 * 2**20) + b"}"
    )
    assert status == 400 and payload["error"]["field"] == "body"
    status, payload, _ = await api.call("POST", "/v1/functions/nope/invoke", {})
    assert status == 404
    # None of that produced an activation.
    assert (await api.call("GET", "/v1/activations"))[1] == {"activations": []}


async def test_bad_names(api: Api) -> None:
    status, payload, _ = await api.call("PUT", "/v1/functions/bad%20name", GOOD)
    assert status == 400 and payload["error"]["field"] == "name"
    status, payload, _ = await api.call("POST", "/v1/tenants", {"name": "Not OK"})
    assert status == 400 and payload["error"]["field"] == "name"
