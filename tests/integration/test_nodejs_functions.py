"""Node.js functions through the HTTP API on the real Docker engine, as any function:
deployed (source, zip, the CLI), invoked sync and async, recorded, metered and billed;
and `GET /v1/runtimes`, which lists every runtime with the version that runs it."""

from __future__ import annotations

import asyncio
import base64
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.commands import main as cli_main
from gateway.keys import PLATFORM
from tests.conftest import Api, Running
from tests.served import wait_for_status

SAMPLES = Path(__file__).resolve().parents[2] / "functions"
NODE = "nodejs:18"

LAMBDA = """
exports.handler = async (event, context) => {
  await new Promise((resolve) => setTimeout(resolve, 5));
  console.log('lambda got', event.n);
  const left = context.getRemainingTimeInMillis() > 0;
  return { doubled: event.n * 2, id: context.awsRequestId, left };
};
"""

FAILING = """
function main(params) {
  console.log('about to fail');
  if (params.reject) return Promise.reject(new TypeError('rejected ' + params.reject));
  throw new Error('boom ' + params.n);
}
module.exports.main = main;
"""


def zipped(files: dict[str, str]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


async def deploy(api: Api, name: str, code: dict[str, str], **fields: object) -> dict[str, Any]:
    body = {"runtime": NODE, "code": code, **fields}
    status, payload, _ = await api.call("PUT", f"/v1/functions/{name}", body)
    assert status in (200, 201), payload
    return dict(payload)


async def test_openwhisk_main_deployed_with_defaults_runs_and_is_recorded(api: Api) -> None:
    source = (SAMPLES / "hello-node" / "main.js").read_text()
    # No handler: the runtime's default, `main`, as OpenWhisk's.
    deployed = await deploy(api, "hello-node", {"source": source})
    assert deployed["runtime"] == NODE and deployed["handler"] == "main"

    status, body, headers = await api.invoke("hello-node", {"name": "Ada"})
    assert status == 200, body
    assert body == {"greeting": "Hello, Ada!"}
    assert headers["X-Nimbus-Cold-Start"] == "true"
    status, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert status == 200
    assert act["status"] == "success" and act["result"] == body
    assert any("greeting Ada" in line for line in act["logs"])
    assert act["memory_mb"] == 128 and act["duration_ms"] >= 0
    # Warm: the same container answers the second call.
    status, _, headers = await api.invoke("hello-node", {})
    assert status == 200 and headers["X-Nimbus-Cold-Start"] == "false"
    # Metered and billed like any function.
    _, bill, _ = await api.call("GET", "/v1/billing")
    lines = {line["key"]: line for line in bill["lines"]}
    assert lines["hello-node"]["invocations"] == 2


async def test_a_plain_top_level_main_needs_no_export_as_in_openwhisk(api: Api) -> None:
    source = "function main(params) {\n  return { sum: params.a + params.b };\n}\n// the end"
    await deploy(api, "plain", {"source": source})
    status, body, _ = await api.invoke("plain", {"a": 2, "b": 3})
    assert status == 200 and body == {"sum": 5}, body


async def test_lambda_handler_sync_and_async(api: Api) -> None:
    await deploy(api, "lambda", {"source": LAMBDA}, handler="index.handler")
    status, body, headers = await api.invoke("lambda", {"n": 21})
    assert status == 200, body
    assert body["doubled"] == 42 and body["left"] is True
    assert body["id"] == headers["X-Nimbus-Activation-Id"]

    status, body, _ = await api.call("POST", "/v1/functions/lambda/invoke?async=true", {"n": 4})
    assert status == 202, body
    act = await wait_for_status(api, body["activation_id"], {"success", "application_error"})
    assert act["status"] == "success" and act["result"]["doubled"] == 8
    assert any("lambda got 4" in line for line in act["logs"])


async def test_a_zip_with_package_json_and_node_modules(api: Api) -> None:
    code = zipped(
        {
            "package.json": '{"name": "shout", "main": "src/app.js"}',
            "src/app.js": "const up = require('upper');\n"
            "exports.main = (p) => ({ text: up(p.text) });\n",
            "node_modules/upper/package.json": '{"name": "upper", "main": "up.js"}',
            "node_modules/upper/up.js": "module.exports = (s) => String(s).toUpperCase();\n",
        }
    )
    await deploy(api, "shout", {"zip": code})
    status, body, _ = await api.invoke("shout", {"text": "quiet"})
    assert status == 200 and body == {"text": "QUIET"}, body


async def test_a_thrown_error_and_a_rejection_are_the_functions_error(api: Api) -> None:
    await deploy(api, "failing", {"source": FAILING})
    status, body, headers = await api.invoke("failing", {"n": 7})
    assert status == 502, body
    err = body["error"]
    assert err["type"] == "application_error" and "Error: boom 7" in err["message"]
    _, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert act["status"] == "application_error"
    assert any("about to fail" in line for line in act["logs"])
    # A rejected Promise too; the container stays usable after a handled error.
    status, body, _ = await api.invoke("failing", {"reject": "x"})
    assert status == 502 and "TypeError: rejected x" in body["error"]["message"], body


async def test_deploy_refuses_node_code_that_cannot_serve_its_handler(api: Api) -> None:
    cases = [
        ({"source": "exports.main = () => 1;"}, "handle", "handler"),
        ({"source": "exports.main = () => 1;"}, "lib.x.main", "handler"),
        ({"zip": zipped({"lib/a.js": "exports.main = () => 1;"})}, "main", "handler"),
        ({"zip": zipped({"package.json": "{nope"})}, "main", "code.zip"),
    ]
    for code, handler, field in cases:
        body = {"runtime": NODE, "handler": handler, "code": code}
        status, payload, _ = await api.call("PUT", "/v1/functions/bad", body)
        assert status == 400 and payload["error"]["field"] == field, (handler, payload)
    status, payload, _ = await api.call(
        "PUT", "/v1/functions/bad", {"runtime": "nodejs:99", "code": {"source": "x"}}
    )
    assert status == 400 and "nodejs:18" in payload["error"]["message"]


async def test_the_cli_deploys_a_package_directory(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NIMBUS_URL", api.url)
    monkeypatch.setenv("NIMBUS_API_KEY", api.key)
    sample = str(SAMPLES / "json-transform")
    argv = ["deploy", "json-transform", sample, "--runtime", NODE, "--handler", "handler"]
    assert await asyncio.to_thread(cli_main, argv) == 0
    event = {
        "records": [
            {"u": {"n": "b"}, "a": 2},
            {"u": {"n": "a"}, "a": 1},
            {"u": {"n": "c"}, "a": 2},
        ],
        "where": {"a": 2},
        "sort_by": "-u.n",
        "fields": {"name": "u.n"},
    }
    status, body, headers = await api.invoke("json-transform", event)
    assert status == 200, body
    assert body["count"] == 2 and body["records"] == [{"name": "c"}, {"name": "b"}]
    assert body["activation"] == headers["X-Nimbus-Activation-Id"]
    status, body, _ = await api.invoke("json-transform", {"records": 5})
    assert status == 502 and "BadEvent: records must be" in body["error"]["message"]


async def test_runtimes_are_listed_with_the_versions_their_images_run(
    api: Api, runtime_images: dict[str, str]
) -> None:
    status, body, _ = await api.call("GET", "/v1/runtimes")
    assert status == 200, body
    listed = {runtime["name"]: runtime for runtime in body["runtimes"]}
    assert set(listed) >= {"python:3.11", NODE}
    python, node = listed["python:3.11"], listed[NODE]
    assert python["version"].startswith("3.11.") and node["version"].startswith("18.")
    assert (
        python["image"] == runtime_images["python:3.11"] and node["image"] == runtime_images[NODE]
    )
    assert python["default"] is True and node["default"] is False
    assert node["default_handler"] == "main" and python["default_handler"] == "main.handler"
    assert {fmt["kind"] for fmt in node["code_formats"]} == {"source", "zip"}
    assert node["stem_cells"] == 0  # the test platform starts none
    status, _, _ = await api.call("GET", "/v1/runtimes", key="nmb_wrong")
    assert status == 401


@pytest.mark.platform(stem_cells=(("nodejs:18", 128, 1),))
async def test_a_nodejs_stem_cell_serves_the_first_call(platform: Running) -> None:
    api = platform.api
    invoker = platform.app[PLATFORM].ops.invoker
    for _ in range(200):
        if invoker.container_states()["prewarm"] == 1:
            break
        await asyncio.sleep(0.1)
    assert invoker.container_states()["prewarm"] == 1
    _, body, _ = await api.call("GET", "/v1/runtimes")
    assert {r["name"]: r["stem_cells"] for r in body["runtimes"]}[NODE] == 1
    await deploy(api, "stem", {"source": "exports.main = () => ({ ok: true });"})
    status, body, headers = await api.invoke("stem")
    assert status == 200 and body == {"ok": True}
    _, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    # The stem cell only needed /init: no container start in this call's init time.
    assert act["init_ms"] < 150, act
