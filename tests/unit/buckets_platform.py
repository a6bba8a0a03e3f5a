"""A real gateway with the bucket routes (process driver) for the object store's tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.app import create_app
from gateway.config import MAX_OBJECT_BYTES, Config
from invoker.objects.opening import BLOB_DIR
from tests.conftest import ADMIN_KEY, Api, free_port

Events = list[tuple[str, dict[str, Any]]]


class Bucketed:
    """A running gateway with the bucket routes, and the object events it emitted."""

    def __init__(self, data_dir: Path, max_object_bytes: int) -> None:
        self.data_dir = data_dir
        self.max_object_bytes = max_object_bytes
        self.events: Events = []
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.api: Api

    async def start(self) -> None:
        async def collect(tenant: str, event: dict[str, Any]) -> None:
            self.events.append((tenant, event))

        port = free_port()
        config = Config(
            data_dir=self.data_dir,
            port=port,
            admin_key=ADMIN_KEY,
            driver="process",
            stem_cells=(),
            max_object_bytes=self.max_object_bytes,
        )
        app = create_app(config, on_object_event=collect)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.session = aiohttp.ClientSession()
        self.api = Api(f"http://127.0.0.1:{port}", self.session, ADMIN_KEY)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()
        self.session = self.runner = None

    async def raw(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, CIMultiDict[str]]:
        """One request with a raw body; returns (status, raw body, headers)."""
        assert self.session is not None
        url = URL(self.api.url + path, encoded=True)
        all_headers = {**self.api.headers(key), **(headers or {})}
        async with self.session.request(method, url, data=data, headers=all_headers) as resp:
            return resp.status, await resp.read(), CIMultiDict(resp.headers)

    def object_files(self) -> list[Path]:
        """Every object file on disk (temp files excluded)."""
        return object_files(self.data_dir)


def object_files(data_dir: Path) -> list[Path]:
    """The files holding objects' bytes (temp files excluded)."""
    root = data_dir / BLOB_DIR
    return [f for f in root.rglob("*") if f.is_file() and f.parent.name != "_tmp"]


@pytest.fixture
async def nimbus(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Bucketed]:
    """The gateway with buckets; `@pytest.mark.platform(max_object_bytes=N)` sets the limit."""
    marker = request.node.get_closest_marker("platform")
    limit = marker.kwargs.get("max_object_bytes", MAX_OBJECT_BYTES) if marker else MAX_OBJECT_BYTES
    running = Bucketed(tmp_path / "data", limit)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def error_field(body: bytes) -> Any:
    """The field an error response body names, if any."""
    return json.loads(body)["error"].get("field")
