"""The platform on a shared Postgres store, as several gateways in a cluster would run it."""

from __future__ import annotations

import asyncio
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


async def test_two_gateways_never_run_one_async_call_twice(
    runtime_images, tmp_path: Path, docker_client
) -> None:
    """A claim is a lease the running gateway renews: the other never takes a live call."""
    if not URL:
        pytest.skip("NIMBUS_TEST_POSTGRES_URL is not set")
    schema = f"nimbus_it_{uuid.uuid4().hex[:8]}"
    store_url = f"{URL}?nimbus_schema={schema}"
    # Leases of 0.6 s against a 2.5 s call: without renewals the other gateway would take
    # the call over twice during it.
    gateways = [
        await start_platform(tmp_path / name, store_url=store_url, stem_cells=(), async_lease_s=0.6)
        for name in ("a", "b")
    ]
    (_, a), (_, b) = gateways
    try:
        await a.api.deploy(
            "slow", "import time\ndef handler(e):\n    time.sleep(2.5)\n    return 1\n"
        )
        status, body, _ = await a.api.call("POST", "/v1/functions/slow/invoke?async=true", {})
        assert status == 202, body
        activation = f"/v1/activations/{body['activation_id']}"
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            _, act, _ = await b.api.call("GET", activation)
            if act["status"] not in ("pending", "running"):
                break
            assert asyncio.get_running_loop().time() < deadline, act
            await asyncio.sleep(0.2)
        assert act["status"] == "success" and act["attempts"] == 1, act
        ran = [
            gw
            for gw in (a, b)
            if docker_client.api.containers(
                filters={"label": f"io.nimbus.managed={gw.config.owner}"}
            )
        ]
        assert len(ran) == 1, "both gateways ran the call"
    finally:
        for runner, running in gateways:
            await running.api.session.close()
            await runner.cleanup()
        conn = await asyncpg.connect(URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
