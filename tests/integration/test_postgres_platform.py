"""The platform on a shared Postgres store, as several gateways in a cluster would run it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Running, start_platform

URL = os.environ.get("NIMBUS_TEST_POSTGRES_URL", "")


@pytest.fixture
async def pg_platform(runtime_images, tmp_path: Path) -> AsyncIterator[Running]:
    if not URL:
        if os.environ.get("CI"):
            pytest.fail("NIMBUS_TEST_POSTGRES_URL is not set (make test sets it)")
        pytest.skip("NIMBUS_TEST_POSTGRES_URL is not set")
    schema = f"nimbus_it_{uuid.uuid4().hex[:8]}"
    runner, running = await start_platform(
        tmp_path / "data", store_url=f"{URL}?nimbus_schema={schema}", stem_cells=()
    )
    try:
        yield running
    finally:
        await running.api.session.close()
        await runner.cleanup()
        conn = await asyncpg.connect(URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def test_deploy_invoke_bill_on_postgres(pg_platform: Running) -> None:
    api = pg_platform.api
    await api.deploy("pg", "def handler(e):\n    return e['n'] + 1\n")
    status, body, headers = await api.invoke("pg", {"n": 41})
    assert (status, body) == (200, 42)
    _, act, _ = await api.call("GET", f"/v1/activations/{headers['X-Nimbus-Activation-Id']}")
    assert act["status"] == "success" and act["result"] == 42
    _, bill, _ = await api.call("GET", "/v1/billing")
    assert bill["total"]["invocations"] == 1
