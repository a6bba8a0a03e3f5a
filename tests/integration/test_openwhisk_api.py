"""The OpenWhisk API at /api/v1 over HTTP, on real Docker: credentials, actions,
invocation (blocking, non-blocking, result-only, past the blocking window), errors in
OpenWhisk's shape, and tenant isolation."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from typing import Any

from tests.conftest import Api
from tests.openwhisk_client.ow import Ow, is_ow_error, tenant_with_credential

HELLO = (
    "def main(args):\n"
    "    print('hi', args.get('name'))\n"
    "    return {'greeting': 'hello ' + args.get('name', 'world')}\n"
)
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z stdout: ")


def notes_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in doc["annotations"]}


async def test_credentials_are_api_keys_shown_once(api: Api) -> None:
    key, ow = await tenant_with_credential(api, "owcred")
    user, _, secret = ow.auth.partition(":")
    assert re.fullmatch(r"[0-9a-f-]{36}", user) and len(secret) == 64
    async with api.session.get(api.url + "/api/v1") as resp:  # no credentials needed
        info = await resp.json()
        assert resp.status == 200 and info["api_paths"] == ["/api/v1"]
    assert {r["kind"] for r in info["runtimes"]["python"]} >= {"python:3", "python:default"}
    assert await ow.call("GET", "/namespaces") == (200, ["owcred"])
    status, body = await ow.call("GET", "/namespaces", auth="nobody:wrong")
    assert is_ow_error(status, body, 401)
    async with api.session.get(api.url + "/api/v1/namespaces") as resp:
        assert is_ow_error(resp.status, await resp.json(), 401)
    # The credential is one of the tenant's keys: listed, never shown again, revocable.
    status, keys, _ = await api.call("GET", "/v1/tenants/self/keys", key=key)
    assert status == 200 and len(keys["keys"]) == 2 and secret not in str(keys)
    status, minted, _ = await api.call("POST", "/v1/openwhisk/credentials", key=key)
    assert status == 201 and minted["auth"] == f"{minted['uuid']}:{minted['key']}"
    second = Ow(api, minted["auth"])
    assert await second.call("GET", "/namespaces") == (200, ["owcred"])
    status, _, _ = await api.call("DELETE", f"/v1/tenants/self/keys/{minted['key_id']}", key=key)
    assert status == 204
    assert is_ow_error(*await second.call("GET", "/namespaces"), 401)
    status, body, _ = await api.call("POST", "/v1/openwhisk/credentials")  # the admin key
    assert status == 403, body
    # Deleting the tenant ends its credential like its keys.
    assert (await api.call("DELETE", "/v1/tenants/owcred"))[0] == 204
    assert is_ow_error(*await ow.call("GET", "/namespaces"), 401)


async def test_action_create_update_get_list_delete(api: Api) -> None:
    key, ow = await tenant_with_credential(api, "owactions")
    path = ow.ns("actions", "hello")
    body = {"exec": {"kind": "python:3", "code": HELLO}, "limits": {"timeout": 5000}}
    status, doc = await ow.call("PUT", path, body)
    assert status == 200, doc
    assert doc["name"] == "hello" and doc["namespace"] == "owactions"
    assert doc["version"] == "0.0.1" and doc["publish"] is False
    assert doc["exec"]["kind"] == "python:3" and doc["exec"]["binary"] is False
    assert doc["limits"]["timeout"] == 5000 and doc["limits"]["memory"] == 256
    assert is_ow_error(*await ow.call("PUT", path, body), 409)  # exists, no overwrite
    status, doc = await ow.call("PUT", path, {"limits": {"memory": 128}}, overwrite=True)
    assert status == 200 and doc["version"] == "0.0.2", doc
    assert doc["limits"] == {"timeout": 5000, "memory": 128, "concurrency": 1, "logs": 10}
    status, doc = await ow.call("GET", path)  # the code was kept by the update
    assert status == 200 and doc["exec"]["code"] == HELLO and doc["exec"]["main"] == "main"
    status, doc = await ow.call("GET", path, code=False)
    assert status == 200 and "code" not in doc["exec"]
    # Native and OpenWhisk views are of one function.
    status, native, _ = await api.call("GET", "/v1/functions/hello", key=key)
    assert status == 200 and native["version"] == 2 and native["memory_mb"] == 128
    await ow.put_action("another", HELLO)
    await ow.put_action("third", HELLO)
    status, listed = await ow.call("GET", ow.ns("actions"))
    assert status == 200 and [a["name"] for a in listed] == ["another", "hello", "third"]
    assert (await ow.call("GET", ow.ns("actions"), limit=1, skip=1))[1][0]["name"] == "hello"
    assert await ow.call("GET", ow.ns("actions"), count=True) == (200, {"actions": 3})
    status, gone = await ow.call("DELETE", path)
    assert status == 200 and gone["name"] == "hello"
    assert is_ow_error(*await ow.call("GET", path), 404)
    assert is_ow_error(*await ow.call("DELETE", path), 404)


async def test_unknown_kind_and_bad_bodies_answer_400(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owkinds")
    path = ow.ns("actions", "js")
    status, body = await ow.call("PUT", path, {"exec": {"kind": "nodejs:20", "code": "x"}})
    assert is_ow_error(status, body, 400)
    assert "python:3" in body["error"] and "python:default" in body["error"]
    status, body = await ow.call("PUT", path, {"exec": {"kind": "python:3", "code": "def f(:"}})
    assert is_ow_error(status, body, 400)
    status, body = await ow.call("PUT", path, {"limits": {"timeout": 1000}})
    assert is_ow_error(status, body, 400)  # a new action needs exec
    async with ow.api.session.put(
        f"{ow.api.url}/api/v1{path}", data=b"{", headers=ow.headers()
    ) as resp:
        assert is_ow_error(resp.status, await resp.json(), 400)
    status, body = await ow.call("GET", "/namespaces/_/nosuchthing")
    assert is_ow_error(status, body, 404)


async def test_invoke_blocking_result_and_non_blocking(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owinvoke")
    await ow.put_action("hello", HELLO)
    path = ow.ns("actions", "hello")
    status, record = await ow.call("POST", path, {"name": "ada"}, blocking=True)
    assert status == 200, record
    assert record["response"] == {
        "status": "success",
        "statusCode": 0,
        "success": True,
        "result": {"greeting": "hello ada"},
    }
    assert record["name"] == "hello" and record["namespace"] == "owinvoke"
    assert record["subject"] == "owinvoke" and record["version"] == "0.0.1"
    assert record["end"] >= record["start"] > 1_600_000_000_000
    assert record["duration"] == record["end"] - record["start"]
    assert len(record["logs"]) == 1 and LOG_LINE.match(record["logs"][0])
    assert record["logs"][0].endswith("stdout: hi ada")
    notes = notes_of(record)
    assert notes["path"] == "owinvoke/hello" and notes["kind"] == "python:3"
    assert notes["limits"]["memory"] == 256 and notes["limits"]["timeout"] == 60000
    assert "initTime" in notes and notes["waitTime"] >= 0  # the first call is a cold start
    status, result = await ow.call("POST", path, {"name": "bo"}, blocking=True, result=True)
    assert (status, result) == (200, {"greeting": "hello bo"})
    status, accepted = await ow.call("POST", path, {"name": "cy"})  # non-blocking by default
    assert status == 202 and set(accepted) == {"activationId"}
    later = await ow.activation(accepted["activationId"])
    assert later["response"]["result"] == {"greeting": "hello cy"}
    assert is_ow_error(*await ow.call("POST", ow.ns("actions", "nope"), {}, blocking=True), 404)


async def test_errors_answer_502_with_the_activation(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owerrors")
    await ow.put_action("boom", "def main(args):\n    raise ValueError('bad input')\n")
    status, record = await ow.call("POST", ow.ns("actions", "boom"), {}, blocking=True)
    assert status == 502, record
    assert record["response"]["status"] == "action developer error"
    assert record["response"]["statusCode"] == 2 and record["response"]["success"] is False
    assert "bad input" in record["response"]["result"]["error"]
    await ow.put_action("refuses", "def main(args):\n    return {'error': 'no way'}\n")
    path = ow.ns("actions", "refuses")
    status, record = await ow.call("POST", path, {}, blocking=True)
    assert status == 502 and record["response"]["status"] == "application error"
    assert record["response"]["statusCode"] == 1
    status, result = await ow.call("POST", path, {}, blocking=True, result=True)
    assert (status, result) == (502, {"error": "no way"})


async def test_a_call_outliving_the_blocking_window_answers_202(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owslow")
    code = "import time\n\ndef main(args):\n    time.sleep(3)\n    return {'slept': True}\n"
    await ow.put_action("slow", code)
    status, body = await ow.call("POST", ow.ns("actions", "slow"), {}, blocking=True, timeout=500)
    assert status == 202 and set(body) == {"activationId"}, body
    assert is_ow_error(*await ow.call("GET", ow.ns("activations", body["activationId"])), 404)
    record = await ow.activation(body["activationId"])
    assert record["response"]["result"] == {"slept": True}
    status, body = await ow.call("POST", ow.ns("actions", "slow"), {}, blocking=True, timeout=0)
    assert is_ow_error(status, body, 400)


async def test_binary_zip_action_with_main_module(api: Api) -> None:
    _, ow = await tenant_with_credential(api, "owzip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        main = "from helper import twice\n\ndef run(args):\n    return {'n': twice(args['n'])}\n"
        archive.writestr("__main__.py", main)
        archive.writestr("helper.py", "def twice(n):\n    return 2 * n\n")
    code = base64.b64encode(buffer.getvalue()).decode()
    body = {"exec": {"kind": "python:default", "code": code, "binary": True, "main": "run"}}
    status, doc = await ow.call("PUT", ow.ns("actions", "zipped"), body)
    assert status == 200 and doc["exec"]["binary"] is True and doc["exec"]["main"] == "run"
    status, result = await ow.call(
        "POST", ow.ns("actions", "zipped"), {"n": 21}, blocking=True, result=True
    )
    assert (status, result) == (200, {"n": 42})
    no_main = io.BytesIO()
    with zipfile.ZipFile(no_main, "w") as archive:
        archive.writestr("other.py", "def main(a):\n    return a\n")
    body["exec"]["code"] = base64.b64encode(no_main.getvalue()).decode()
    status, error = await ow.call("PUT", ow.ns("actions", "bad"), body)
    assert is_ow_error(status, error, 400) and "__main__.py" in error["error"]


async def test_another_tenants_namespace_is_forbidden_and_its_things_invisible(api: Api) -> None:
    _, alice = await tenant_with_credential(api, "owalice")
    _, bob = await tenant_with_credential(api, "owbob")
    await alice.put_action("private", HELLO)
    status, record = await alice.call("POST", alice.ns("actions", "private"), {}, blocking=True)
    assert status == 200
    activation = record["activationId"]
    await alice.call("PUT", alice.ns("triggers", "t"), {})
    # Bob naming Alice's namespace: 403, whatever he asks for.
    for method, path in (
        ("GET", "/namespaces/owalice/actions"),
        ("GET", "/namespaces/owalice/actions/private"),
        ("POST", "/namespaces/owalice/actions/private"),
        ("DELETE", "/namespaces/owalice/actions/private"),
        ("GET", "/namespaces/owalice/activations"),
        ("GET", f"/namespaces/owalice/activations/{activation}"),
        ("GET", "/namespaces/owalice/triggers/t"),
        ("POST", "/namespaces/owalice/triggers/t"),
        ("GET", "/namespaces/owalice/rules"),
        ("GET", "/namespaces/nosuchtenant/actions"),
    ):
        status, body = await bob.call(method, path)
        assert is_ow_error(status, body, 403), (method, path, status, body)
    # In his own namespace, none of hers exist.
    assert await bob.call("GET", bob.ns("actions")) == (200, [])
    assert is_ow_error(*await bob.call("GET", bob.ns("actions", "private")), 404)
    assert is_ow_error(*await bob.call("GET", bob.ns("activations", activation)), 404)
    assert await bob.call("GET", bob.ns("activations")) == (200, [])
    assert await bob.call("GET", bob.ns("triggers")) == (200, [])
    # A rule of his naming her action through her namespace is refused too.
    await bob.call("PUT", bob.ns("triggers", "mine"), {})
    status, body = await bob.call(
        "PUT", bob.ns("rules", "steal"), {"trigger": "mine", "action": "/owalice/private"}
    )
    assert is_ow_error(status, body, 403)
    # Alice's own name works as her namespace.
    status, listed = await alice.call("GET", "/namespaces/owalice/actions")
    assert status == 200 and [a["name"] for a in listed] == ["private"]
