"""Deploy, invoke, inspect and delete functions over HTTP, on the real Docker engine."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import zipfile

import docker

from tests.conftest import Api, Running

HELLO = """
def handler(event):
    print("hello from", event.get("name"))
    return {"greeting": "Hello, " + event.get("name", "world") + "!"}
"""


def managed(client: docker.DockerClient, platform: Running, function: str | None = None) -> list:
    labels = [f"io.nimbus.managed={platform.config.owner}"]
    if function:
        labels.append(f"io.nimbus.function={function}")
    # sparse: no inspect per container, which races with the platform removing them
    return client.containers.list(all=True, sparse=True, filters={"label": labels})


async def test_deploy_invoke_warm_and_update(platform: Running, docker_client) -> None:
    api = platform.api
    created = await api.deploy("hello", HELLO)
    assert created["version"] == 1
    assert created["code_sha256"] == hashlib.sha256(HELLO.encode()).hexdigest()

    status, body, headers = await api.invoke("hello", {"name": "Ada"})
    assert status == 200, body
    assert body == {"greeting": "Hello, Ada!"}
    assert headers["X-Nimbus-Cold-Start"] == "true"
    assert float(headers["X-Nimbus-Duration-Ms"]) >= 0
    first_id = headers["X-Nimbus-Activation-Id"]

    status, body, headers = await api.invoke("hello", {"name": "Bob"})
    assert status == 200 and body == {"greeting": "Hello, Bob!"}
    assert headers["X-Nimbus-Cold-Start"] == "false"
    assert headers["X-Nimbus-Activation-Id"] != first_id
    assert len(managed(docker_client, platform, "hello")) == 1

    # The activation records what happened, logs included.
    status, act, _ = await api.call("GET", f"/v1/activations/{first_id}")
    assert status == 200
    assert act["status"] == "success" and act["cold_start"] is True
    assert act["result"] == {"greeting": "Hello, Ada!"}
    assert any("hello from Ada" in line for line in act["logs"])
    assert act["memory_mb"] == 128 and act["duration_ms"] > 0 and act["end"] >= act["start"]

    updated = await api.deploy("hello", HELLO.replace("Hello", "Hi"))
    assert updated["version"] == 2
    status, body, headers = await api.invoke("hello", {"name": "Ada"})
    assert body == {"greeting": "Hi, Ada!"}
    assert headers["X-Nimbus-Cold-Start"] == "true"


async def test_lambda_style_handler_and_zip_with_package(api: Api) -> None:
    source = """
def handler(event, context):
    return {"fn": context.function_name, "mem": context.memory_limit_in_mb,
            "left": context.get_remaining_time_in_millis() > 0, "id": context.aws_request_id}
"""
    await api.deploy("ctx", source, memory_mb=256)
    status, body, headers = await api.invoke("ctx")
    assert status == 200, body
    assert body["fn"] == "ctx" and body["mem"] == 256 and body["left"] is True
    assert body["id"] == headers["X-Nimbus-Activation-Id"]

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app/__init__.py", "")
        z.writestr(
            "app/main.py", "from vendored import shout\ndef run(e):\n    return shout(e['w'])\n"
        )
        z.writestr("vendored.py", "def shout(w):\n    return w.upper() + '!'\n")
    body = {
        "runtime": "python:3.11",
        "handler": "app.main.run",
        "code": {"zip": base64.b64encode(buf.getvalue()).decode()},
    }
    status, payload, _ = await api.call("PUT", "/v1/functions/zipped", body)
    assert status == 201, payload
    status, result, _ = await api.invoke("zipped", {"w": "nimbus"})
    assert (status, result) == (200, "NIMBUS!")


async def test_function_error_is_502_and_recorded(api: Api) -> None:
    await api.deploy(
        "boom",
        "def handler(e):\n    print('about to fail')\n    raise ValueError('bad input: 42')\n",
    )
    status, body, headers = await api.invoke("boom")
    assert status == 502
    err = body["error"]
    assert err["type"] == "application_error"
    assert "bad input: 42" in err["message"]
    assert err["activation_id"] == headers["X-Nimbus-Activation-Id"]
    status, act, _ = await api.call("GET", f"/v1/activations/{err['activation_id']}")
    assert act["status"] == "application_error"
    assert any("about to fail" in line for line in act["logs"])
    # The platform is fine and the container is reusable after a handled error.
    status, _, headers = await api.invoke("boom")
    assert status == 502 and headers["X-Nimbus-Cold-Start"] == "false"


async def test_timeout_is_504_and_container_destroyed(platform: Running, docker_client) -> None:
    api = platform.api
    await api.deploy(
        "slow",
        "import time\ndef handler(e):\n    time.sleep(e.get('s', 0))\n    return 'done'\n",
        timeout_s=1,
    )
    status, _, _ = await api.invoke("slow", {"s": 0})
    assert status == 200
    status, body, headers = await api.invoke("slow", {"s": 5})
    assert status == 504, body
    assert body["error"]["type"] == "timeout"
    assert managed(docker_client, platform, "slow") == []
    status, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert act["status"] == "timeout"
    status, body, headers = await api.invoke("slow", {"s": 0})
    assert status == 200 and headers["X-Nimbus-Cold-Start"] == "true"


async def test_memory_blowup_is_the_functions_failure(api: Api) -> None:
    source = "def handler(e):\n    hog = bytearray(e['mb'] * 2**20)\n    return len(hog)\n"
    await api.deploy("hog", source, memory_mb=128)
    status, body, _ = await api.invoke("hog", {"mb": 400})
    assert status == 502, body
    assert body["error"]["type"] == "application_error"
    status, body, _ = await api.invoke("hog", {"mb": 10})
    assert (status, body) == (200, 10 * 2**20)


async def test_delete_removes_function_and_containers(platform: Running, docker_client) -> None:
    api = platform.api
    await api.deploy("gone", HELLO)
    assert (await api.invoke("gone"))[0] == 200
    assert len(managed(docker_client, platform, "gone")) == 1
    status, _, _ = await api.call("DELETE", "/v1/functions/gone")
    assert status == 200
    assert managed(docker_client, platform, "gone") == []
    assert (await api.invoke("gone"))[0] == 404
    assert (await api.call("GET", "/v1/functions/gone"))[0] == 404
    assert (await api.call("DELETE", "/v1/functions/gone"))[0] == 404


async def test_activation_listing(api: Api) -> None:
    await api.deploy("a", HELLO)
    await api.deploy("b", HELLO)
    for _ in range(3):
        await api.invoke("a")
    await api.invoke("b")
    status, body, _ = await api.call("GET", "/v1/activations?function=a&limit=2")
    assert status == 200
    assert [x["function"] for x in body["activations"]] == ["a", "a"]
    status, body, _ = await api.call("GET", "/v1/activations")
    assert len(body["activations"]) == 4
    assert body["activations"][0]["function"] == "b"  # newest first
    status, body, _ = await api.call("GET", "/v1/activations?limit=0")
    assert status == 400 and body["error"]["field"] == "limit"


async def test_concurrent_calls_all_succeed(api: Api) -> None:
    await api.deploy(
        "par", "import time\ndef handler(e):\n    time.sleep(0.2)\n    return e['i']\n"
    )
    results = await asyncio.gather(*(api.invoke("par", {"i": i}) for i in range(8)))
    assert sorted(r[1] for r in results) == list(range(8))
    assert all(r[0] == 200 for r in results)
