"""Functions from images of their own, on the real Docker engine through the HTTP API.

Two tiny images are built here from local images only (no registry): one a plain HTTP
server on $PORT (Knative's contract), one built FROM the Nimbus Python runtime image with
its handler baked in (Nimbus's own /init and /run). Both are deployed, called sync and
async, recorded, and found hardened: non-root, read-only root, no network; a missing
image and a root image are refused at deploy time, unless the admin allows root.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from invoker.image_import import import_image, pool_engines
from invoker.images import local_base_tag
from tests.conftest import Api
from tests.openwhisk_client.ow import tenant_with_credential
from tests.served import wait_for_status

# What each image's function answers: the event back, and what it sees of its container.
PROBE = """
import os


def facts(event):
    try:
        open("/etc/nimbus-probe", "w").close()
        root_writable = True
    except OSError:
        root_writable = False
    with open("/tmp/probe", "w") as tmp:
        tmp.write("ok")
    return {
        "echo": event,
        "uid": os.getuid(),
        "root_writable": root_writable,
        "interfaces": sorted(os.listdir("/sys/class/net")),
        "netns": os.readlink("/proc/self/ns/net"),
        "greeting": os.environ.get("GREETING"),
    }
"""

SERVER = """
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from probe import facts


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        size = int(self.headers.get("Content-Length") or 0)
        event = json.loads(self.rfile.read(size) or b"{}")
        if event.get("fail"):
            self.send_error(500, "asked to fail")
            return
        body = json.dumps(facts(event)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print("serving on", os.environ["PORT"], flush=True)
HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""

BAKED = """
from probe import facts


def handler(event):
    print("baked handler got", event.get("n"))
    return facts(event)
"""


def build(client: docker.DockerClient, root: Path, dockerfile: str, files: dict[str, str]) -> str:
    """Build an image from `files` and `dockerfile` (no pull); its tag."""
    root.mkdir(parents=True)
    for name, text in {**files, "Dockerfile": dockerfile}.items():
        (root / name).write_text(text)
    tag = f"nimbus-test/own-{root.name}:{uuid.uuid4().hex[:8]}"
    client.images.build(path=str(root), tag=tag, pull=False, rm=True, forcerm=True)
    return tag


@pytest.fixture(scope="module")
def images(
    docker_client: docker.DockerClient,
    runtime_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """{"http": ..., "baked": ..., "root": ...}: the test images, removed afterwards."""
    runtime = runtime_images["python:3.11"]
    try:
        docker_client.images.get(local_base_tag("python"))
        plain, unlabel = local_base_tag("python"), ""
    except docker.errors.ImageNotFound:  # a base from elsewhere: the runtime image, unlabelled
        plain, unlabel = runtime, 'LABEL io.nimbus.runtime=""\nENTRYPOINT []\n'
    root = tmp_path_factory.mktemp("own-images")
    server = {"probe.py": PROBE, "server.py": SERVER}
    run_server = 'WORKDIR /app\nCMD ["python3", "-S", "/app/server.py"]\n'
    tags = {
        "http": build(
            docker_client,
            root / "http",
            f"FROM {plain}\n{unlabel}COPY . /app/\nUSER 10001:10001\n{run_server}",
            server,
        ),
        "root": build(
            docker_client,
            root / "root",
            f"FROM {plain}\n{unlabel}COPY . /app/\nUSER root\n{run_server}",
            server,
        ),
        "baked": build(
            docker_client,
            root / "baked",
            f"FROM {runtime}\nCOPY probe.py main.py /function/\n",
            {"probe.py": PROBE, "main.py": BAKED},
        ),
    }
    yield tags
    for tag in tags.values():
        try:
            docker_client.images.remove(tag, force=True)
        except docker.errors.APIError:
            pass


async def deploy(api: Api, name: str, body: dict[str, Any], key: str | None = None) -> Any:
    status, payload, _ = await api.call("PUT", f"/v1/functions/{name}", body, key=key)
    assert status in (200, 201), payload
    return payload


def function_containers(client: docker.DockerClient, name: str) -> list[dict[str, Any]]:
    """Inspect data of the running containers of function `name`."""
    found = client.api.containers(filters={"label": f"io.nimbus.function={name}"})
    return [client.api.inspect_container(c["Id"]) for c in found]


def assert_hardened(attrs: dict[str, Any]) -> None:
    host = attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0
    assert not attrs["Config"]["User"].startswith("0:")


def assert_contained(result: dict[str, Any]) -> None:
    """Non-root, read-only root with a writable /tmp (it wrote there), no network."""
    assert result["uid"] != 0
    assert result["root_writable"] is False
    assert result["interfaces"] == ["lo"]


async def test_an_http_server_image_runs_sync_and_async_hardened(
    api: Api, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    body = {"image": images["http"], "env": {"GREETING": "hi"}, "memory_mb": 256}
    deployed = await deploy(api, "knative", body)
    assert deployed["runtime"] == "image" and deployed["image"] == images["http"]
    assert deployed["image_protocol"] == "http"  # detected: the image has no Nimbus label

    status, result, headers = await api.invoke("knative", {"n": 1})
    assert status == 200, result
    assert result["echo"] == {"n": 1} and result["greeting"] == "hi"
    assert_contained(result)
    assert headers["X-Nimbus-Cold-Start"] == "true"
    status, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert status == 200 and act["status"] == "success" and act["result"] == result
    assert act["memory_mb"] == 256 and act["cold_start"] is True and act["duration_ms"] > 0

    # The function's container and its adapter, both hardened, one network namespace.
    pair = function_containers(docker_client, "knative")
    roles = {c["Config"]["Labels"]["io.nimbus.role"]: c for c in pair}
    assert set(roles) == {"function", "http-adapter"}
    for attrs in pair:
        assert_hardened(attrs)
    assert roles["function"]["HostConfig"]["NetworkMode"] == "none"
    assert (
        roles["http-adapter"]["HostConfig"]["NetworkMode"] == f"container:{roles['function']['Id']}"
    )

    status, warm, headers = await api.invoke("knative", {"n": 2})
    assert status == 200 and warm["echo"] == {"n": 2}
    assert headers["X-Nimbus-Cold-Start"] == "false"

    status, accepted, _ = await api.call(
        "POST", "/v1/functions/knative/invoke?async=true", {"n": 3}
    )
    assert status == 202, accepted
    done = await wait_for_status(api, accepted["activation_id"], {"success", "application_error"})
    assert done["status"] == "success" and done["result"]["echo"] == {"n": 3}

    # A failing answer is the function's error, recorded as such.
    status, failed, _ = await api.invoke("knative", {"fail": True})
    assert status == 502 and "HTTP 500" in failed["error"]["message"], failed

    _, bill, _ = await api.call("GET", "/v1/billing")
    assert {line["key"]: line for line in bill["lines"]}["knative"]["invocations"] == 4

    # Deleting the function removes both containers.
    status, _, _ = await api.call("DELETE", "/v1/functions/knative")
    assert status == 200
    assert function_containers(docker_client, "knative") == []


async def test_an_image_from_the_runtime_with_a_baked_in_handler(
    api: Api, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    deployed = await deploy(api, "baked", {"image": images["baked"], "env": {"GREETING": "yo"}})
    assert deployed["image_protocol"] == "nimbus"  # detected by the runtime's label
    assert deployed["handler"] == "main.handler"  # the runtime's default

    status, result, headers = await api.invoke("baked", {"n": 7})
    assert status == 200, result
    assert result["echo"] == {"n": 7} and result["greeting"] == "yo"
    assert_contained(result)
    status, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert act["status"] == "success" and act["cold_start"] is True
    assert any("baked handler got 7" in line for line in act["logs"])  # per-call logs
    (attrs,) = function_containers(docker_client, "baked")
    assert_hardened(attrs)

    status, accepted, _ = await api.call("POST", "/v1/functions/baked/invoke?async=true", {"n": 8})
    assert status == 202
    done = await wait_for_status(api, accepted["activation_id"], {"success", "application_error"})
    assert done["status"] == "success" and done["result"]["echo"] == {"n": 8}


async def test_a_missing_image_is_refused_at_deploy_naming_it(api: Api) -> None:
    missing = f"nimbus-test/absent:{uuid.uuid4().hex[:8]}"
    status, body, _ = await api.call("PUT", "/v1/functions/ghost", {"image": missing})
    assert status == 400, body
    assert missing in body["error"]["message"] and body["error"]["field"] == "image"
    status, _, _ = await api.call("GET", "/v1/functions/ghost")
    assert status == 404


async def test_a_root_image_is_refused_unless_the_admin_allows_it(
    api: Api, images: dict[str, str]
) -> None:
    status, body, _ = await api.call("PUT", "/v1/functions/rooted", {"image": images["root"]})
    assert status == 400, body
    assert "root" in body["error"]["message"] and body["error"]["field"] == "image"


@pytest.mark.platform(allow_root_images=True)
async def test_an_allowed_root_image_runs_as_root_still_locked_down(
    api: Api, images: dict[str, str]
) -> None:
    await deploy(api, "rooted", {"image": images["root"]})
    status, result, _ = await api.invoke("rooted", {"n": 1})
    assert status == 200, result
    assert result["uid"] == 0
    assert result["root_writable"] is False and result["interfaces"] == ["lo"]


async def test_tenants_images_are_apart(api: Api, images: dict[str, str]) -> None:
    other = await api.tenant("own-image-b")
    await deploy(api, "mine", {"image": images["http"]})
    await deploy(api, "theirs", {"image": images["http"]}, key=other)
    # The other tenant can neither see nor call this tenant's function.
    status, _, _ = await api.call("GET", "/v1/functions/mine", key=other)
    assert status == 404
    status, _, _ = await api.invoke("mine", {}, key=other)
    assert status == 404
    # Each runs in a network namespace of its own.
    _, mine, _ = await api.invoke("mine", {})
    _, theirs, _ = await api.invoke("theirs", {}, key=other)
    assert mine["netns"] != theirs["netns"]
    assert mine["interfaces"] == theirs["interfaces"] == ["lo"]


async def test_openwhisk_blackbox_actions_run_the_image(api: Api, images: dict[str, str]) -> None:
    _, ow = await tenant_with_credential(api, "owblackbox")
    path = ow.ns("actions", "box")
    status, doc = await ow.call(
        "PUT", path, {"exec": {"kind": "blackbox", "image": images["http"]}}
    )
    assert status == 200, doc
    assert doc["exec"]["kind"] == "blackbox" and doc["exec"]["image"] == images["http"]
    status, result = await ow.call("POST", path, {"n": 5}, blocking=True, result=True)
    assert status == 200 and result["echo"] == {"n": 5}, result
    missing = {"exec": {"kind": "blackbox", "image": "nimbus-test/absent:x"}}
    status, doc = await ow.call("PUT", ow.ns("actions", "nobox"), missing)
    assert status == 400 and "nimbus-test/absent:x" in str(doc), doc


async def test_an_imported_tarball_deploys(
    api: Api, images: dict[str, str], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    tag = f"nimbus-test/imported:{uuid.uuid4().hex[:8]}"
    docker_client.images.get(images["http"]).tag(tag)
    tarball = tmp_path / "fn.tar"
    with tarball.open("wb") as out:
        for chunk in docker_client.images.get(tag).save(named=True):
            out.write(chunk)
    docker_client.images.remove(tag)
    status, body, _ = await api.call("PUT", "/v1/functions/imported", {"image": tag})
    assert status == 400 and tag in body["error"]["message"]

    lines: list[str] = []
    (loaded,) = await asyncio.to_thread(
        import_image, tarball, pool_engines(None, "", None), lines.append
    )
    try:
        assert loaded.engine == "local" and tag in loaded.images and loaded.error is None
        await deploy(api, "imported", {"image": tag})
        status, result, _ = await api.invoke("imported", {"n": 9})
        assert status == 200 and result["echo"] == {"n": 9}
    finally:
        docker_client.images.remove(tag)
