"""Shared fixtures: a real platform on a real Docker engine, and an HTTP client for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import docker
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import Config
from gateway.server import start_sites

ADMIN_KEY = "nmb_admin_test_key_0123456789"
OWNERS: set[str] = set()  # container owners (data dirs) the test session started


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real engine; its absence is a failure, not a skip (`make test` starts one)."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        pytest.fail(f"no Docker engine answers ({exc}); run `make test`, which starts one")
    yield client
    # Servers killed on purpose (and their netns holders) leave containers whose data dir is
    # gone, so no later start sweeps them: remove what this session's platforms owned.
    for container in client.api.containers(all=True, filters={"label": "io.nimbus.managed"}):
        if (container.get("Labels") or {}).get("io.nimbus.managed") in OWNERS:
            try:
                client.api.remove_container(container["Id"], force=True)
            except docker.errors.APIError:
                pass
    client.close()


@pytest.fixture(scope="session")
def runtime_images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Build (or find, by content hash) the runtime images once per session."""
    from invoker.images import build_runtime_images

    return build_runtime_images(docker_client, lambda line: None)


@dataclass
class Api:
    """A thin client for one running gateway."""

    url: str
    session: aiohttp.ClientSession
    key: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """One request; returns (status, decoded JSON or None, headers)."""
        kwargs: dict[str, Any] = {"headers": self.headers(key)}
        if data is not None:
            kwargs["data"] = data
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.url + path, **kwargs) as resp:
            raw = await resp.read()
            payload = await resp.json(content_type=None) if raw else None
            return resp.status, payload, dict(resp.headers)

    async def deploy(self, name: str, source: str, *, key: str | None = None, **fields: Any) -> Any:
        """PUT a source function; asserts it was accepted."""
        body = {"runtime": "python:3.11", "handler": "main.handler", "code": {"source": source}}
        body.update(fields)
        status, payload, _ = await self.call("PUT", f"/v1/functions/{name}", body, key=key)
        assert status in (200, 201), payload
        return payload

    async def invoke(
        self, name: str, event: Any = None, *, key: str | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        return await self.call("POST", f"/v1/functions/{name}/invoke", event or {}, key=key)

    async def tenant(self, name: str) -> str:
        """Create a tenant with the admin key; return its API key."""
        status, payload, _ = await self.call("POST", "/v1/tenants", {"name": name})
        assert status == 201, payload
        return str(payload["api_key"])


@dataclass
class Running:
    """A platform under test."""

    api: Api
    app: web.Application
    config: Config


async def start_platform(
    data_dir: Path, driver: str = "docker", **overrides: Any
) -> tuple[web.AppRunner, Running]:
    """Start gateway + invoker on a free port in this event loop."""
    port = free_port()
    config = Config(data_dir=data_dir, port=port, admin_key=ADMIN_KEY, driver=driver, **overrides)
    OWNERS.add(config.owner)
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    await start_sites(runner, "127.0.0.1", port)
    session = aiohttp.ClientSession()
    running = Running(
        api=Api(f"http://127.0.0.1:{port}", session, ADMIN_KEY), app=app, config=config
    )
    return runner, running


@pytest.fixture
async def platform(
    runtime_images: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Running]:
    """Nimbus on the real Docker engine, with a fresh data dir.

    A test marked `@pytest.mark.platform(keep_alive_s=1, ...)` gets those Config overrides.
    """
    marker = request.node.get_closest_marker("platform")
    # No stem cells unless a test asks: they make container counts depend on timing.
    overrides: dict[str, Any] = {"stem_cells": ()}
    overrides.update(marker.kwargs if marker else {})
    if "keep_alive_s" in overrides:
        overrides.setdefault("keep_alive_policy", "fixed")
    runner, running = await start_platform(tmp_path / "data", **overrides)
    try:
        yield running
    finally:
        await running.api.session.close()
        await runner.cleanup()


@pytest.fixture
def api(platform: Running) -> Api:
    return platform.api


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration tests need Docker: mark them so `-m 'not docker'` runs the rest."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts or "e2e" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.docker)


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`nimbus serve` on the real engine in a subprocess, once it answers /healthz."""
    OWNERS.add(Config(data_dir=data_dir).owner)
    # One process: the default worker count follows the machine the suite runs on.
    env = {**os.environ, "NIMBUS_ADMIN_KEY": ADMIN_KEY, "NIMBUS_WORKERS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--driver",
            "docker",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("nimbus serve did not start")
