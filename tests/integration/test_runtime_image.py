"""The Python runtime image on the real Docker engine, run exactly as production runs it.

Builds the image with `build_runtime_images` (offline base via debootstrap where no
registry answers), then starts containers locked down as the Docker driver does and
speaks /init and /run to the proxy through a unix socket in a bind-mounted directory.
"""

from __future__ import annotations

import base64
import io
import shutil
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import docker
import pytest

from invoker.api import RUNTIMES
from invoker.images import alias_tag, build_runtime_images, content_hash, image_tag, runtime_dir

pytestmark = pytest.mark.docker

RUNTIME = "python:3.11"
SOCKET_DIR = "/run/nimbus"


@pytest.fixture(scope="module")
def built(docker_client: docker.DockerClient) -> dict[str, str]:
    """The runtime images, built (or found by content hash); a failure here fails the tests."""
    lines: list[str] = []
    started = time.monotonic()
    tags = build_runtime_images(docker_client, lines.append)
    print(f"\nbuild_runtime_images: {time.monotonic() - started:.1f} s, {len(lines)} lines")
    return tags


def production_kwargs(image: str, socket_dir: Path, name: str) -> dict[str, Any]:
    """The locked-down settings the Docker driver starts every runtime container with."""
    return {
        "image": image,
        "name": name,
        "detach": True,
        "read_only": True,
        "tmpfs": {"/tmp": "rw,size=64m"},
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": "128m",
        "pids_limit": 128,
        "user": "10001",
        "volumes": {str(socket_dir): {"bind": SOCKET_DIR, "mode": "rw"}},
        "environment": {"NIMBUS_SOCKET": f"{SOCKET_DIR}/proxy.sock"},
        "labels": {"io.nimbus.test": "runtime-image"},
    }


@pytest.fixture
def start_container(
    docker_client: docker.DockerClient, built: dict[str, str], tmp_path: Path
) -> Iterator[Any]:
    """Returns a function that starts a production-like container and its socket path."""
    started: list[Any] = []

    def start() -> tuple[Any, Path, float]:
        socket_dir = tmp_path / f"sock-{len(started)}"
        socket_dir.mkdir()
        socket_dir.chmod(0o777)  # the container's uid 10001 creates the socket here
        name = f"nimbus-test-runtime-{uuid.uuid4().hex[:10]}"
        t0 = time.monotonic()
        container = docker_client.containers.run(
            **production_kwargs(built[RUNTIME], socket_dir, name)
        )
        started.append(container)
        return container, socket_dir / "proxy.sock", t0

    yield start
    for container in started:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass


def wait_for_socket(path: Path, container: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            return
        except OSError:
            time.sleep(0.002)
    container.reload()
    pytest.fail(
        f"proxy socket {path} never accepted; status={container.status} "
        f"logs={container.logs().decode(errors='replace')}"
    )


async def post(session: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any]:
    async with session.post("http://proxy" + path, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


PROBE = """
import os, socket

def handler(event, context):
    try:
        open('/opt/nimbus/written', 'w').close()
        root_writable = True
    except OSError:
        root_writable = False
    with open('/tmp/scratch', 'w') as f:
        f.write('ok')
    try:
        socket.create_connection(('10.255.255.1', 80), timeout=0.5).close()
        network = True
    except OSError:
        network = False
    print('probe', context.aws_request_id)
    return {
        'uid': os.getuid(),
        'euid': os.geteuid(),
        'root_writable': root_writable,
        'network': network,
        'echo': event,
        'memory': context.memory_limit_in_mb,
    }
"""


def test_images_are_tagged_by_content_and_alias(
    docker_client: docker.DockerClient, built: dict[str, str]
) -> None:
    assert set(RUNTIMES) <= set(built)  # every runtime directory is built, served or not
    tag = built[RUNTIME]
    assert tag == image_tag(RUNTIME)
    image = docker_client.images.get(tag)
    assert alias_tag(RUNTIME) in image.tags
    assert image.labels["io.nimbus.runtime"] == RUNTIME
    assert image.attrs["Config"]["User"] == "10001"


def test_content_hash_follows_the_recipe_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "runtimes" / "python"
    shutil.copytree(runtime_dir() / "python", copy)
    original = content_hash(copy)
    assert original == content_hash(runtime_dir() / "python")
    assert len(original) == 12 and int(original, 16) >= 0
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "proxy.cpython-311.pyc").write_bytes(b"bytecode")
    assert content_hash(copy) == original  # bytecode is not part of the recipe
    proxy = copy / "proxy.py"
    proxy.write_bytes(proxy.read_bytes() + b"\n")
    changed = content_hash(copy)
    assert changed != original
    monkeypatch.setenv("NIMBUS_RUNTIMES_DIR", str(tmp_path / "runtimes"))
    assert image_tag(RUNTIME) == f"nimbus/python:3.11-{changed}"


def test_second_build_is_cached(docker_client: docker.DockerClient, built: dict[str, str]) -> None:
    lines: list[str] = []
    started = time.monotonic()
    again = build_runtime_images(docker_client, lines.append)
    elapsed = time.monotonic() - started
    print(f"\ncached build_runtime_images: {elapsed * 1000:.0f} ms")
    assert again == built
    assert any("up to date" in line for line in lines), lines
    assert not any(line.startswith("Step ") for line in lines), lines
    assert elapsed < 5


async def test_init_and_run_in_a_locked_down_container(start_container: Any) -> None:
    container, sock, t0 = start_container()
    wait_for_socket(sock, container)
    ready = time.monotonic()
    connector = aiohttp.UnixConnector(path=str(sock))
    async with aiohttp.ClientSession(connector=connector) as session:
        status, payload = await post(
            session, "/init", {"value": {"code": PROBE, "binary": False, "main": "main.handler"}}
        )
        assert status == 200, payload
        activation = uuid.uuid4().hex
        status, payload = await post(
            session,
            "/run",
            {
                "value": {"q": [1, "two"]},
                "activation_id": activation,
                "deadline": time.time() * 1000 + 10_000,
                "function_name": "probe",
                "memory_limit_mb": 128,
            },
        )
        first_result = time.monotonic()
        assert status == 200, payload
        result = payload["result"]
        assert result["uid"] == 10001 and result["euid"] == 10001
        assert result["root_writable"] is False
        assert result["network"] is False
        assert result["echo"] == {"q": [1, "two"]}
        assert result["memory"] == 128
        assert payload["logs"] == [f"probe {activation}"]
    print(
        f"\ncontainer create -> socket ready {(ready - t0) * 1000:.0f} ms, "
        f"-> first /run result {(first_result - t0) * 1000:.0f} ms"
    )


async def test_zip_with_vendored_package_runs_in_the_container(start_container: Any) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("app/__init__.py", "")
        archive.writestr(
            "app/fn.py", "import vendlib\ndef handler(a):\n    return vendlib.twice(a['n'])\n"
        )
        archive.writestr("vendlib/__init__.py", "def twice(n):\n    return 2 * n\n")
    code = base64.b64encode(buf.getvalue()).decode()
    container, sock, _ = start_container()
    wait_for_socket(sock, container)
    connector = aiohttp.UnixConnector(path=str(sock))
    async with aiohttp.ClientSession(connector=connector) as session:
        status, payload = await post(
            session, "/init", {"value": {"code": code, "binary": True, "main": "app.fn.handler"}}
        )
        assert status == 200, payload
        status, payload = await post(session, "/run", {"value": {"n": 21}})
        assert (status, payload["result"]) == (200, 42)


def test_container_stops_on_sigterm(start_container: Any) -> None:
    container, sock, _ = start_container()
    wait_for_socket(sock, container)
    container.stop(timeout=10)  # SIGTERM, then SIGKILL (exit 137) if it is ignored
    container.reload()
    assert container.status == "exited"
    code = container.attrs["State"]["ExitCode"]
    assert code == 0, f"exit code {code}: SIGTERM was not handled"
