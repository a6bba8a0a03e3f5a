"""The store suite's fixtures and records, shared by every test_store*.py module.

Each test that takes `store` runs once per backend. The PostgreSQL run needs
NIMBUS_TEST_POSTGRES_URL (`make test` starts a server with scripts/ensure-postgres.sh);
without it that run fails under CI=true and is skipped elsewhere. Every PostgreSQL test
gets a schema of its own, dropped afterwards. A module takes the fixtures as
`store = store_suite.store` (and `backend` likewise).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from invoker.api import Activation, FunctionSpec, Status
from invoker.dispatcher import pending_activation
from invoker.metering import meter_activation
from invoker.store.base import FunctionDraft, Rule, Store, Trigger
from invoker.store.postgres import PostgresStore
from invoker.store.sqlite import SqliteStore

PG_ENV = "NIMBUS_TEST_POSTGRES_URL"
T0 = 1_750_000_000.0  # a wall-clock second, mid-2025

RESIZE = b"from PIL import Image\n\ndef handler(event, ctx):\n    return {'w': event['w']}\n"
THUMB = b"def handler(event, ctx):\n    return {'thumb': True}\n"


class Backend:
    """One database, and more handles onto it: another gateway, or the same one restarted."""

    def __init__(self, kind: str, make: Callable[[], Store]) -> None:
        self.kind = kind
        self._make = make
        self._handles: list[Store] = []

    async def connect(self) -> Store:
        """A new, opened handle on the same database."""
        store = self._make()
        await store.open()
        self._handles.append(store)
        return store

    async def peer(self, store: Store) -> Store:
        """What a second gateway would use: its own handle where the backend is shared.

        SQLite is one gateway's file, served by one store: its peer is that store.
        """
        return store if self.kind == "sqlite" else await self.connect()

    async def stop(self, store: Store) -> None:
        """The gateway holding `store` goes away."""
        self._handles.remove(store)
        await store.close()

    async def stop_all(self) -> None:
        while self._handles:
            await self.stop(self._handles[-1])


BACKEND = pytest.StashKey[Backend]()


def postgres_url() -> str:
    """The test server's URL; its absence fails in CI and skips elsewhere."""
    url = os.environ.get(PG_ENV)
    if url:
        return url
    why = (
        f"{PG_ENV} is not set, so the PostgreSQL store is not tested: run "
        "`bash scripts/ensure-postgres.sh` (as root) and export "
        f"{PG_ENV}=postgresql://nimbus:nimbus@127.0.0.1:5432/nimbus_test"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of each backend."""
    schema: str | None = None
    if request.param == "sqlite":
        path = tmp_path / "nimbus.db"
        backend = Backend("sqlite", lambda: SqliteStore(path))
    else:
        url = postgres_url()
        schema = f"nimbus_test_{secrets.token_hex(6)}"
        backend = Backend("postgres", lambda: PostgresStore(url, schema=schema))
    request.node.stash[BACKEND] = backend
    try:
        first = await backend.connect()
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL cannot be used: {exc!r}")
    try:
        yield first
    finally:
        await backend.stop_all()
        if schema is not None:
            con = await asyncpg.connect(postgres_url())
            try:
                await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await con.close()


@pytest.fixture
def backend(store: Store, request: pytest.FixtureRequest) -> Backend:
    """The database behind `store`."""
    found: Backend = request.node.stash[BACKEND]
    return found


def draft(
    name: str = "resize", *, tenant: str = "acme", code: bytes = RESIZE, **fields: Any
) -> FunctionDraft:
    """A function as a deploy would store it (resize, in acme, by default)."""
    values: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "runtime": "python:3.11",
        "handler": "main.handler",
        "code_kind": "source",
        "code": code,
        "memory_mb": 256,
        "timeout_s": 30.0,
        "concurrency": 1,
        "env": {"BUCKET": "photos", "GREETING": "grüß dich"},
        "network": False,
    }
    values.update(fields)
    return FunctionDraft(**values)


def finished(
    aid: str, *, tenant: str = "acme", function: str = "resize", start: float = T0, **fields: Any
) -> Activation:
    """A successful synchronous call as the invoker records it."""
    activation = Activation(
        id=aid,
        tenant=tenant,
        function=function,
        version=1,
        status=Status.SUCCESS,
        result={"width": 640, "tags": ["jpeg", "ünïcode"], "ratio": 0.75, "nested": {"a": None}},
        error=None,
        logs=["resizing 1920x1080", "done"],
        start=start,
        end=start + 0.19,
        duration_ms=187.25,
        init_ms=0.0,
        wait_ms=0.5,
        cold_start=False,
        memory_mb=384,
        node="node-a",
        trigger=None,
        peak_memory_mb=41.5,
        cpu_seconds=0.12,
        attempts=0,
        dead_letter=False,
    )
    return replace(activation, **fields)


def pending(
    aid: str, *, tenant: str = "acme", function: str = "resize", **fields: Any
) -> Activation:
    """An accepted async call that has not run, as the dispatcher records it."""
    spec = FunctionSpec(
        tenant, function, 1, "python:3.11", "main.handler", "0" * 64, "source", memory_mb=384
    )
    return replace(pending_activation(aid, spec, None), **fields)


def usage_of(activation: Activation) -> dict[str, Any]:
    """The usage row the invoker saves with a finished activation."""
    return meter_activation(activation).to_row()


def trigger(name: str = "nightly", *, tenant: str = "acme", **fields: Any) -> Trigger:
    """A trigger (a nightly schedule by default)."""
    values: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "type": "schedule",
        "config": {"cron": "0 3 * * *", "timezone": "UTC"},
        "secret_hash": None,
        "last_fire": None,
        "created": T0,
        "updated": T0,
    }
    values.update(fields)
    return Trigger(**values)


def rule(
    name: str, trigger_name: str, function: str = "resize", *, tenant: str = "acme", **fields: Any
) -> Rule:
    """A rule sending `trigger_name`'s events to `function`."""
    values: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "trigger": trigger_name,
        "function": function,
        "enabled": True,
        "created": T0,
        "updated": T0,
    }
    values.update(fields)
    return Rule(**values)
