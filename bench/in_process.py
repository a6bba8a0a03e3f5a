"""Nimbus run inside a benchmark's own event loop, so the bench can see the pool's state."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from common import free_port

from gateway.app import create_app
from gateway.config import Config
from gateway.keys import PLATFORM
from invoker.service import Invoker
from invoker.store.base import Store

KEY = "nmb_admin_bench_key"
RUNTIME = "python:3.11"
MEMORY_MB = 128
NOOP = "def handler(event):\n    return event\n"


def source(tag: str) -> str:
    """The no-op function with a marker, so each deploy is a new version with new code."""
    return f"# {tag}\n{NOOP}"


@dataclass
class Gateway:
    """Nimbus running in this event loop, and an HTTP client for it (as the admin)."""

    url: str
    http: aiohttp.ClientSession
    invoker: Invoker
    store: Store
    owner: str

    async def deploy(self, name: str, code: str) -> dict[str, Any]:
        """Deploy (or update) `name` with `code` as a RUNTIME function of MEMORY_MB."""
        body = {"runtime": RUNTIME, "handler": "main.handler", "memory_mb": MEMORY_MB,
                "code": {"source": code}}  # fmt: skip
        async with self.http.put(f"{self.url}/v1/functions/{name}", json=body) as resp:
            assert resp.status in (200, 201), await resp.text()
            out: dict[str, Any] = await resp.json()
            return out

    async def invoke(self, name: str, event: dict[str, Any]) -> tuple[int, bool]:
        """Call `name` with `event`: the HTTP status (0 when the request itself failed) and
        whether the call was a cold start."""
        try:
            url = f"{self.url}/v1/functions/{name}/invoke"
            async with self.http.post(url, json=event) as r:
                await r.read()
                return r.status, r.headers.get("X-Nimbus-Cold-Start") == "true"
        except (aiohttp.ClientError, TimeoutError):
            return 0, False


@asynccontextmanager
async def nimbus(
    data_dir: Path, call_timeout: float = 300.0, **overrides: Any
) -> AsyncIterator[Gateway]:
    """Gateway + invoker (Docker driver) on a free port in this loop; its containers are
    removed on exit. `overrides` are Config fields; `call_timeout` bounds each request."""
    port = free_port()
    config = Config(data_dir=data_dir, port=port, admin_key=KEY, driver="docker", **overrides)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    http = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {KEY}"},
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=call_timeout),
    )
    try:
        platform = app[PLATFORM]
        yield Gateway(
            f"http://127.0.0.1:{port}", http, platform.ops.invoker, platform.store, config.owner
        )
    finally:
        await http.close()
        await runner.cleanup()


@asynccontextmanager
async def two_nodes(
    prefix: str, flavor: tuple[str, float, int, str], **overrides: Any
) -> AsyncIterator[Gateway]:
    """`nimbus` on a temporary data dir with exactly two nodes of `flavor` (name, vcpu,
    memory MB, price per hour), placed first-fit so every container starts on the first."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data:
        async with nimbus(
            Path(data),
            node_flavors=(flavor,),
            min_nodes=2,
            max_nodes=2,
            placement_policy="first-fit",
            stem_cells=(),
            **overrides,
        ) as gw:
            yield gw
