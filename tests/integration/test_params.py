"""Default parameters, secret parameters and annotations on /v1/functions, over HTTP on the
real Docker engine; what a deploy stores survives a restart on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import Api, start_platform

ECHO = "def handler(event):\n    return event\n"
PG_URL = os.environ.get("NIMBUS_TEST_POSTGRES_URL", "")
NEW_COLUMNS = (
    "params",
    "secret_params",
    "web",
    "web_raw",
    "web_secret_hash",
    "components",
    "annotations",
)
FIELDS: dict[str, Any] = {
    "params": {"greeting": "hello", "token": "s3cret", "limits": {"n": 3}},
    "secret_params": ["token"],
    "web": True,
    "web_raw": True,
    "web_secret": "open-sesame",
    "annotations": {"web-export": True, "note": "kept as given"},
}


def assert_fields_shown(function: dict[str, Any]) -> None:
    """What GET and list show of FIELDS: the secret parameter and web secret never."""
    assert function["params"] == {"greeting": "hello", "token": "***", "limits": {"n": 3}}
    assert function["secret_params"] == ["token"]
    assert function["web"] is True and function["web_raw"] is True
    assert function["web_secret"] is True
    assert function["annotations"] == {"web-export": True, "note": "kept as given"}
    assert function["sequence"] is None
    assert "s3cret" not in str(function) and "open-sesame" not in str(function)


async def wait_activation(api: Api, activation_id: str, key: str | None = None) -> dict[str, Any]:
    """The activation once it has finished."""
    for _ in range(300):
        _, act, _ = await api.call("GET", f"/v1/activations/{activation_id}", key=key)
        if act["status"] not in ("pending", "running"):
            return dict(act)
        await asyncio.sleep(0.1)
    raise AssertionError(f"activation {activation_id} never finished")


async def test_params_go_under_the_event_and_secrets_are_never_shown(api: Api) -> None:
    key = await api.tenant("params-a")
    created = await api.deploy("echo", ECHO, key=key, **FIELDS)
    assert_fields_shown(created)
    _, got, _ = await api.call("GET", "/v1/functions/echo", key=key)
    assert_fields_shown(got)
    _, listed, _ = await api.call("GET", "/v1/functions", key=key)
    assert_fields_shown(listed["functions"][0])

    # The function sees every default, the secret one in clear; the event's keys win.
    status, body, _ = await api.invoke("echo", {"greeting": "hi", "name": "Ada"}, key=key)
    assert status == 200, body
    assert body == {"greeting": "hi", "name": "Ada", "token": "s3cret", "limits": {"n": 3}}

    # Async calls get them too (merged when the call runs).
    status, queued, _ = await api.call(
        "POST", "/v1/functions/echo/invoke?async=true", {"name": "Bob"}, key=key
    )
    assert status == 202, queued
    act = await wait_activation(api, queued["activation_id"], key)
    assert act["status"] == "success"
    assert act["result"]["greeting"] == "hello" and act["result"]["name"] == "Bob"

    # A deploy without them clears them.
    plain = await api.deploy("echo", ECHO, key=key)
    assert plain["params"] == {} and plain["web"] is False and plain["web_secret"] is False
    status, body, _ = await api.invoke("echo", {"x": 1}, key=key)
    assert body == {"x": 1}


async def test_another_tenant_never_sees_params(api: Api) -> None:
    owner = await api.tenant("params-owner")
    other = await api.tenant("params-other")
    await api.deploy("mine", ECHO, key=owner, params={"db": "postgres://owner"})
    status, _, _ = await api.call("GET", "/v1/functions/mine", key=other)
    assert status == 404
    _, listed, _ = await api.call("GET", "/v1/functions", key=other)
    assert listed["functions"] == []
    status, _, _ = await api.invoke("mine", {}, key=other)
    assert status == 404


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"params": ["a"]}, "params"),
        ({"params": {"x": "y" * 70_000}}, "params"),
        ({"params": {"__ow_method": "get"}}, "params"),
        ({"params": {"a": 1}, "secret_params": ["b"]}, "secret_params"),
        ({"secret_params": "a"}, "secret_params"),
        ({"annotations": {"x": "y" * 17_000}}, "annotations"),
        ({"annotations": "web-export"}, "annotations"),
        ({"web": "yes"}, "web"),
        ({"web_raw": 1}, "web_raw"),
        ({"web_secret": ""}, "web_secret"),
        ({"web_secret": 42}, "web_secret"),
    ],
)
async def test_bad_fields_answer_400_naming_them(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    body = {"handler": "main.handler", "code": {"source": ECHO}, **fields}
    status, payload, _ = await api.call("PUT", "/v1/functions/bad", body)
    assert status == 400, payload
    assert payload["error"]["field"] == field


async def _survives_restart(data_dir: Path, **overrides: Any) -> None:
    runner, running = await start_platform(data_dir, stem_cells=(), **overrides)
    try:
        await running.api.deploy("kept", ECHO, **FIELDS)
    finally:
        await running.api.session.close()
        await runner.cleanup()
    runner, running = await start_platform(data_dir, stem_cells=(), **overrides)
    try:
        _, got, _ = await running.api.call("GET", "/v1/functions/kept")
        assert_fields_shown(got)
        status, body, _ = await running.api.invoke("kept", {"name": "Ada"})
        assert status == 200 and body["token"] == "s3cret" and body["name"] == "Ada"
    finally:
        await running.api.session.close()
        await runner.cleanup()


async def test_fields_survive_a_restart_on_sqlite(runtime_images: Any, tmp_path: Path) -> None:
    await _survives_restart(tmp_path / "data")


async def test_fields_survive_a_restart_on_postgres(runtime_images: Any, tmp_path: Path) -> None:
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("NIMBUS_TEST_POSTGRES_URL is not set (make test sets it)")
        pytest.skip("NIMBUS_TEST_POSTGRES_URL is not set")
    schema = f"nimbus_it_{uuid.uuid4().hex[:8]}"
    try:
        await _survives_restart(tmp_path / "data", store_url=f"{PG_URL}?nimbus_schema={schema}")
    finally:
        conn = await asyncpg.connect(PG_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def test_a_store_made_before_the_new_fields_gains_them(
    runtime_images: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    runner, running = await start_platform(data_dir, stem_cells=())
    try:
        await running.api.deploy("old", ECHO)
    finally:
        await running.api.session.close()
        await runner.cleanup()
    with sqlite3.connect(data_dir / "nimbus.db") as db:  # as an older version left it
        for column in NEW_COLUMNS:
            db.execute(f"ALTER TABLE functions DROP COLUMN {column}")
    runner, running = await start_platform(data_dir, stem_cells=())
    try:
        _, got, _ = await running.api.call("GET", "/v1/functions/old")
        assert got["params"] == {} and got["web"] is False and got["sequence"] is None
        status, body, _ = await running.api.invoke("old", {"n": 1})
        assert (status, body) == (200, {"n": 1})
        updated = await running.api.deploy("old", ECHO, params={"p": 1})
        assert updated["params"] == {"p": 1}
    finally:
        await running.api.session.close()
        await runner.cleanup()
