"""Immutable versions and aliases with traffic splitting, over HTTP on the real Docker
engine: every deploy a version that stays invokable, aliases that move (rollback), exact
splits, sticky request ids, per-version records, retention, tenants kept apart, and
stores made before versions existed brought up to date (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.keys import PLATFORM
from invoker.versions import DEFAULT_VERSION_RETENTION
from tests.conftest import Api, Running, start_platform
from tests.integration.test_params import wait_activation

PG_URL = os.environ.get("NIMBUS_TEST_POSTGRES_URL", "")
FIRST_FAILS = (
    "import os\n"
    "def handler(event):\n"
    "    if not os.path.exists('/tmp/seen'):\n"
    "        open('/tmp/seen', 'w').close()\n"
    "        raise RuntimeError('the first attempt fails')\n"
    "    return {'v': 1}\n"
)


def code(version: int) -> str:
    """A function that says which deploy it is."""
    return f"def handler(event):\n    return {{'v': {version}}}\n"


async def deploy_versions(api: Api, name: str, count: int, key: str | None = None) -> None:
    for v in range(1, count + 1):
        made = await api.deploy(name, code(v), key=key, memory_mb=128 + 64 * (v % 2))
        assert made["version"] == v


def invoke_path(target: str) -> str:
    """`name:q?query` as the invoke path (the query after `/invoke`)."""
    name, _, query = target.partition("?")
    return f"/v1/functions/{name}/invoke" + (f"?{query}" if query else "")


async def ran(api: Api, target: str, key: str | None = None, **headers: str) -> tuple[int, Any]:
    """(the version that ran, per its answer and header; the alias that chose it);
    asserts the call succeeded."""
    all_headers = {**api.headers(key), **headers}
    url = api.url + invoke_path(target)
    async with api.session.post(url, json={}, headers=all_headers) as resp:
        body = await resp.json(content_type=None)
        assert resp.status == 200, body
        assert int(resp.headers["X-Nimbus-Function-Version"]) == body["v"]
        return body["v"], resp.headers.get("X-Nimbus-Alias")


async def test_every_deploy_is_a_version_that_stays_invokable(platform: Running) -> None:
    api = platform.api
    await deploy_versions(api, "hello", 2)
    assert (await ran(api, "hello"))[0] == 2
    assert (await ran(api, "hello:1"))[0] == 1
    assert (await ran(api, "hello?version=1"))[0] == 1
    assert (await ran(api, "hello:latest"))[0] == 2

    status, listed, _ = await api.call("GET", "/v1/functions/hello/versions")
    assert status == 200 and listed["latest"] == 2
    assert [v["version"] for v in listed["versions"]] == [2, 1]
    v2, v1 = listed["versions"]
    assert (v1["memory_mb"], v2["memory_mb"]) == (192, 128)
    assert v1["code_sha256"] != v2["code_sha256"] and v1["created"] <= v2["created"]
    status, one, _ = await api.call("GET", "/v1/functions/hello/versions/1")
    assert status == 200 and one["version"] == 1 and one["aliases"] == []

    # Each version has its own warm containers; the latest's stay while v1 runs.
    tenant_containers = platform.app[PLATFORM].ops.invoker.containers
    warm = {c.spec.version for c in tenant_containers() if c.spec and c.spec.name == "hello"}
    assert warm == {1, 2}
    # A deploy retires the earlier versions' containers; v1 called again starts its own.
    await api.deploy("hello", code(3))
    status, _, headers = await api.call("POST", "/v1/functions/hello:1/invoke", {})
    assert status == 200 and headers["X-Nimbus-Cold-Start"] == "true"

    for target, want in (
        ("hello:9", 404),
        ("hello?version=9", 404),
        ("hello:prod", 404),
        ("hello:0", 400),
        ("hello:1?version=1", 400),
        ("hello?version=1&alias=prod", 400),
        ("hello?version=x", 400),
        ("nothing:1", 404),
    ):
        status, body, _ = await api.call("POST", invoke_path(target), {})
        assert status == want, (target, body)


async def test_activations_and_usage_record_the_version_that_ran(platform: Running) -> None:
    api = platform.api
    await deploy_versions(api, "meter", 2)
    started = time.time()
    ids = {}
    for target in ("meter:1", "meter", "meter:1"):
        status, _, headers = await api.call("POST", f"/v1/functions/{target}/invoke", {})
        assert status == 200
        ids[headers["X-Nimbus-Activation-Id"]] = 1 if target.endswith(":1") else 2
    for activation_id, version in ids.items():
        act = await wait_activation(api, activation_id)
        assert act["version"] == version
    store = platform.app[PLATFORM].store
    for _ in range(50):  # usage is written behind the answer
        usage = await store.list_usage(None, started - 1, time.time() + 1)
        if len(usage) == 3:
            break
        await asyncio.sleep(0.1)
    assert Counter((u.function, u.version) for u in usage) == {("meter", 1): 2, ("meter", 2): 1}


async def test_an_alias_routes_calls_and_rollback_moves_it(platform: Running) -> None:
    api = platform.api
    await deploy_versions(api, "svc", 2)
    status, made, _ = await api.call("PUT", "/v1/functions/svc/aliases/prod", {"version": 1})
    assert status == 201 and made["version"] == 1 and made["versions"] == {"1": 1.0}
    assert await ran(api, "svc:prod") == (1, "prod")
    assert await ran(api, "svc?alias=prod") == (1, "prod")
    assert (await ran(api, "svc"))[0] == 2  # the plain name is still the latest

    status, moved, _ = await api.call("PUT", "/v1/functions/svc/aliases/prod", {"version": 2})
    assert status == 200 and moved["version"] == 2 and moved["created"] == made["created"]
    assert (await ran(api, "svc:prod"))[0] == 2
    await api.call("PUT", "/v1/functions/svc/aliases/prod", {"version": 1})  # rollback
    assert (await ran(api, "svc:prod"))[0] == 1

    _, got, _ = await api.call("GET", "/v1/functions/svc/aliases/prod")
    assert got["version"] == 1 and got["function"] == "svc"
    await api.call("PUT", "/v1/functions/svc/aliases/beta", {"version": 2})
    _, listed, _ = await api.call("GET", "/v1/functions/svc/aliases")
    assert [a["name"] for a in listed["aliases"]] == ["beta", "prod"]
    _, versions, _ = await api.call("GET", "/v1/functions/svc/versions")
    assert [v["aliases"] for v in versions["versions"]] == [["beta"], ["prod"]]

    for alias, body, field in (
        ("3", {"version": 1}, "alias"),
        ("latest", {"version": 1}, "alias"),
        ("prod", {"version": 9}, "version"),
        ("prod", {"versions": {"1": 0.5, "2": 0.4}}, "versions"),
        ("prod", {"versions": {"1": 0.5, "9": 0.5}}, "versions"),
        ("prod", {"versions": {str(v): 0.2 for v in range(1, 6)}}, "versions"),
    ):
        status, refused, _ = await api.call("PUT", f"/v1/functions/svc/aliases/{alias}", body)
        assert status == 400 and refused["error"]["field"] == field, (alias, body, refused)
    status, _, _ = await api.call("PUT", "/v1/functions/none/aliases/prod", {"version": 1})
    assert status == 404

    status, _, _ = await api.call("DELETE", "/v1/functions/svc/aliases/beta")
    assert status == 200
    status, _, _ = await api.call("POST", "/v1/functions/svc:beta/invoke", {})
    assert status == 404
    status, _, _ = await api.call("DELETE", "/v1/functions/svc/aliases/beta")
    assert status == 404


async def test_a_split_is_exact_and_a_request_id_sticks(platform: Running) -> None:
    api = platform.api
    await deploy_versions(api, "canary", 2)
    split = {"versions": {"1": 0.9, "2": 0.1}}
    status, made, _ = await api.call("PUT", "/v1/functions/canary/aliases/live", split)
    assert status == 201 and made["version"] is None and made["versions"] == split["versions"]
    counts = Counter([(await ran(api, "canary:live"))[0] for _ in range(200)])
    assert counts == {1: 180, 2: 20}  # exact: the counter deals calls out by weight

    sticky = {(await ran(api, "canary:live", **{"X-Nimbus-Request-Id": "user-42"}))[0]}
    for _ in range(10):
        sticky.add((await ran(api, "canary:live", **{"X-Nimbus-Request-Id": "user-42"}))[0])
    assert len(sticky) == 1  # one id, one version
    ids = [str(uuid.UUID(int=i)) for i in range(200)]  # fixed ids: the same every run
    spread = Counter(
        [(await ran(api, "canary:live", **{"X-Nimbus-Request-Id": i}))[0] for i in ids]
    )
    assert 8 <= spread[2] <= 35 and spread[1] + spread[2] == 200


async def test_an_accepted_async_call_keeps_its_version_though_the_alias_moves(
    platform: Running,
) -> None:
    api = platform.api
    await api.deploy("job", FIRST_FAILS)  # v1 fails its first attempt: retried a second later
    await api.deploy("job", code(2))
    await api.call("PUT", "/v1/functions/job/aliases/prod", {"version": 1})
    status, queued, headers = await api.call("POST", "/v1/functions/job:prod/invoke?async=true", {})
    assert status == 202 and queued["version"] == 1 and headers["X-Nimbus-Alias"] == "prod"
    await api.call("PUT", "/v1/functions/job/aliases/prod", {"version": 2})
    act = await wait_activation(api, queued["activation_id"])
    assert (act["status"], act["version"], act["result"], act["attempts"]) == (
        "success",
        1,
        {"v": 1},
        2,
    )
    status, queued, _ = await api.call("POST", "/v1/functions/job/invoke?async=true&version=2", {})
    assert status == 202, queued
    assert (await wait_activation(api, queued["activation_id"]))["result"] == {"v": 2}


async def test_deleting_a_function_deletes_its_versions_and_aliases(api: Api) -> None:
    await deploy_versions(api, "gone", 2)
    await api.call("PUT", "/v1/functions/gone/aliases/prod", {"version": 1})
    status, _, _ = await api.call("DELETE", "/v1/functions/gone")
    assert status == 200
    for path in ("versions", "versions/1", "aliases", "aliases/prod"):
        status, _, _ = await api.call("GET", f"/v1/functions/gone/{path}")
        assert status == 404, path
    await api.deploy("gone", code(1))  # a new function of the same name starts afresh
    _, listed, _ = await api.call("GET", "/v1/functions/gone/versions")
    assert [v["version"] for v in listed["versions"]] == [1]
    _, aliases, _ = await api.call("GET", "/v1/functions/gone/aliases")
    assert aliases["aliases"] == []


async def test_retention_prunes_versions_no_alias_names(api: Api) -> None:
    total = DEFAULT_VERSION_RETENTION + 3
    await api.deploy("many", code(1))
    await api.call("PUT", "/v1/functions/many/aliases/old", {"version": 1})
    for v in range(2, total + 1):
        await api.deploy("many", code(v))
    _, listed, _ = await api.call("GET", "/v1/functions/many/versions")
    kept = [v["version"] for v in listed["versions"]]
    assert kept == [*range(total, total - DEFAULT_VERSION_RETENTION, -1), 1]
    assert (await ran(api, "many:old"))[0] == 1
    status, _, _ = await api.call("POST", "/v1/functions/many:2/invoke", {})
    assert status == 404


async def test_other_tenants_never_see_or_call_versions_and_aliases(api: Api) -> None:
    owner = await api.tenant("versions-owner")
    other = await api.tenant("versions-other")
    await deploy_versions(api, "mine", 2, key=owner)
    await api.call("PUT", "/v1/functions/mine/aliases/prod", {"version": 1}, key=owner)
    for method, path in (
        ("GET", "/v1/functions/mine/versions"),
        ("GET", "/v1/functions/mine/versions/1"),
        ("GET", "/v1/functions/mine/aliases"),
        ("GET", "/v1/functions/mine/aliases/prod"),
        ("DELETE", "/v1/functions/mine/aliases/prod"),
        ("POST", "/v1/functions/mine:1/invoke"),
        ("POST", "/v1/functions/mine:prod/invoke"),
        ("POST", "/v1/functions/mine/invoke?alias=prod"),
    ):
        status, _, _ = await api.call(method, path, {} if method == "POST" else None, key=other)
        assert status == 404, (method, path)
    status, _, _ = await api.call(
        "PUT", "/v1/functions/mine/aliases/prod", {"version": 2}, key=other
    )
    assert status == 404
    assert (await ran(api, "mine:prod", key=owner))[0] == 1  # untouched


async def _upgrades(data_dir: Path, drop: Any, **overrides: Any) -> None:
    """Deploy twice on a store, take its version tables away as an older Nimbus had
    none, and open it again: the latest becomes a version, and deploys go on."""
    runner, running = await start_platform(data_dir, stem_cells=(), **overrides)
    try:
        await deploy_versions(running.api, "old", 2)
    finally:
        await running.api.session.close()
        await runner.cleanup()
    await drop()
    runner, running = await start_platform(data_dir, stem_cells=(), **overrides)
    try:
        api = running.api
        _, listed, _ = await api.call("GET", "/v1/functions/old/versions")
        assert [v["version"] for v in listed["versions"]] == [2]
        assert (await ran(api, "old:2"))[0] == 2
        await api.deploy("old", code(3))
        await api.call("PUT", "/v1/functions/old/aliases/prod", {"version": 2})
        assert (await ran(api, "old:prod"))[0] == 2
        _, listed, _ = await api.call("GET", "/v1/functions/old/versions")
        assert [v["version"] for v in listed["versions"]] == [3, 2]
    finally:
        await running.api.session.close()
        await runner.cleanup()


async def test_a_sqlite_store_made_before_versions_gains_them(
    runtime_images: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"

    async def drop() -> None:
        with sqlite3.connect(data_dir / "nimbus.db") as db:
            db.execute("DROP TABLE function_aliases")
            db.execute("DROP TABLE function_versions")

    await _upgrades(data_dir, drop)


async def test_a_postgres_store_made_before_versions_gains_them(
    runtime_images: Any, tmp_path: Path
) -> None:
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("NIMBUS_TEST_POSTGRES_URL is not set (make test sets it)")
        pytest.skip("NIMBUS_TEST_POSTGRES_URL is not set")
    schema = f"nimbus_it_{uuid.uuid4().hex[:8]}"

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP TABLE "{schema}".function_aliases')
            await conn.execute(f'DROP TABLE "{schema}".function_versions')
        finally:
            await conn.close()

    try:
        await _upgrades(tmp_path / "data", drop, store_url=f"{PG_URL}?nimbus_schema={schema}")
    finally:
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
