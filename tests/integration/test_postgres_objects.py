"""Buckets on a shared PostgreSQL store, as the replicas of k8s/overlays/ha run them: every
gateway sees every bucket and object, whichever gateway wrote it, and a gateway replaced
with an empty data dir (an emptyDir after a restart) loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import Api, Running, start_platform

URL = os.environ.get("NIMBUS_TEST_POSTGRES_URL", "")

Gateway = tuple[web.AppRunner, Running]


class Cluster:
    """Gateways sharing one PostgreSQL schema, each with a data dir of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.schema = f"nimbus_it_{uuid.uuid4().hex[:8]}"
        self.gateways: list[Gateway] = []

    async def start(self) -> Api:
        data_dir = self.tmp_path / f"replica-{len(self.gateways)}"
        gateway = await start_platform(
            data_dir,
            driver="process",
            store_url=f"{URL}?nimbus_schema={self.schema}",
            stem_cells=(),
        )
        self.gateways.append(gateway)
        return gateway[1].api

    async def stop(self, api: Api) -> None:
        for runner, running in list(self.gateways):
            if running.api is api:
                await running.api.session.close()
                await runner.cleanup()
                self.gateways.remove((runner, running))

    async def close(self) -> None:
        for _, running in list(self.gateways):
            await self.stop(running.api)
        conn = await asyncpg.connect(URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()

    async def object_blobs(self) -> int:
        conn = await asyncpg.connect(URL)
        try:
            return int(await conn.fetchval(f'SELECT count(*) FROM "{self.schema}".object_blobs'))
        finally:
            await conn.close()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    if not URL:
        if os.environ.get("CI"):
            pytest.fail("NIMBUS_TEST_POSTGRES_URL is not set (make test sets it)")
        pytest.skip("NIMBUS_TEST_POSTGRES_URL is not set")
    found = Cluster(tmp_path)
    try:
        yield found
    finally:
        await found.close()


async def get(api: Api, path: str, key: str) -> tuple[int, bytes, CIMultiDict[str]]:
    async with api.session.get(api.url + path, headers=api.headers(key)) as resp:
        return resp.status, await resp.read(), CIMultiDict(resp.headers)


async def test_two_gateways_see_each_others_buckets_and_objects(cluster: Cluster) -> None:
    a, b = await cluster.start(), await cluster.start()
    key = await a.tenant("acme")  # made through one gateway, known to both
    assert (await b.call("PUT", "/v1/buckets/photos", key=key))[0] == 201
    assert (await a.call("PUT", "/v1/buckets/photos", key=key))[0] == 200

    cat, path = os.urandom(300_000), "/v1/buckets/photos/objects/in/cat.jpg"
    status, info, _ = await a.call("PUT", path, key=key, data=cat)
    assert status == 201, info
    status, got, headers = await get(b, path, key)
    assert (status, got) == (200, cat)
    assert headers["ETag"] == f'"{hashlib.sha256(cat).hexdigest()}"' == f'"{info["etag"]}"'
    _, listing, _ = await b.call("GET", "/v1/buckets/photos/objects?prefix=in/", key=key)
    assert [(o["key"], o["size"]) for o in listing["objects"]] == [("in/cat.jpg", len(cat))]

    # Replaced through b, read through a; the replaced bytes are gone from the database.
    status, _, _ = await b.call("PUT", path, key=key, data=b"v2")
    assert status == 201
    assert (await get(a, path, key))[1] == b"v2"
    assert await cluster.object_blobs() == 1

    # A replica replaced by a new one with an empty data dir still has everything.
    await cluster.stop(a)
    c = await cluster.start()
    assert (await get(c, path, key))[1] == b"v2"
    status, body, _ = await c.call("DELETE", "/v1/buckets/photos", key=key)
    assert status == 409, body
    assert (await c.call("DELETE", path, key=key))[0] == 200
    assert (await get(b, path, key))[0] == 404
    assert (await b.call("DELETE", "/v1/buckets/photos", key=key))[0] == 200
    assert (await c.call("GET", "/v1/buckets", key=key))[1] == {"buckets": []}
    assert await cluster.object_blobs() == 0


async def test_puts_of_one_key_through_two_gateways_end_with_one_object(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start(), await cluster.start()
    key = await a.tenant("acme")
    assert (await a.call("PUT", "/v1/buckets/race", key=key))[0] == 201
    payloads = [bytes([i]) * (20_000 + i) for i in range(16)]
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).call("PUT", "/v1/buckets/race/objects/k", key=key, data=p)
            for i, p in enumerate(payloads)
        )
    )
    assert [status for status, _, _ in results] == [201] * 16
    seen = {(await get(gw, "/v1/buckets/race/objects/k", key))[1] for gw in (a, b)}
    assert len(seen) == 1 and seen <= set(payloads)
    assert await cluster.object_blobs() == 1  # every replaced version was collected
