"""`create_app(config)`: the HTTP side of the platform, and the parts it starts.

The invoker assembles itself (`invoker.assemble`) from the same settings; this module
wires routes, middlewares and the parts' lifetimes (one cleanup context each, stopped in
reverse order), and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import metrics
from gateway.auth import hash_key, load_token_secret, mint_activation_token
from gateway.config import Config
from gateway.console import routes as console_routes
from gateway.keys import ADMIN_HASH, CONFIG, PLATFORM, RUN_DIR, STORE, TOKEN_SECRET, Platform
from gateway.middleware import authenticate, errors, guard
from gateway.openwhisk import errors as openwhisk_errors
from gateway.openwhisk import routes as openwhisk
from gateway.quotas import QUOTAS, Quotas
from gateway.routes import (
    activations,
    api_keys,
    billing,
    functions,
    health,
    invoke,
    limits,
    tenants,
    triggers,
)
from gateway.routes import (
    buckets as bucket_routes,
)
from gateway.routes import (
    nodes as node_routes,
)
from gateway.routes import runtimes as runtime_routes
from gateway.routes import web as web_routes
from gateway.server import connection_limits
from gateway.step_relay import STEP_RELAY
from invoker.api import FunctionSpec
from invoker.assemble import Wiring, assembled, run_dir_for
from invoker.objects.model import EventSink
from invoker.retention import RetentionSweeper
from invoker.service import Invoker
from invoker.store.factory import open_store
from invoker.tenant_limits import LimitDefaults

log = logging.getLogger("nimbus.gateway")


async def _store(app: web.Application) -> AsyncIterator[None]:
    """The configured store, open while the app runs (the gateway reads it, too)."""
    config = app[CONFIG]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.store_url, config.data_dir)
    await store.open()
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()


async def _invoker(app: web.Application) -> AsyncIterator[None]:
    """The invoker's parts, assembled by the invoker from the same settings."""
    config, store, quotas = app[CONFIG], app[STORE], app[QUOTAS]

    async def prepare(invoker: Invoker) -> None:  # tenants' limits before any call runs
        await quotas.start(store, invoker.set_tenant_caps)

    wiring = Wiring(
        store=store,
        run_dir=app[RUN_DIR],
        registry=app[metrics.REGISTRY],
        token_for=_token_minter(app[TOKEN_SECRET]),
        local_price_per_hour=str(config.price_book.flavors.get("local", Decimal(0))),
        backlog_for=quotas.backlog,
        prepare=prepare,
        step_relay=app.get(STEP_RELAY),  # with --workers N: steps run in their owners
    )
    async with assembled(config, wiring) as ops:
        app[PLATFORM].bind(store, ops)
        try:
            yield
        finally:
            await quotas.close()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Schedules and the activation retention sweep, while the app runs."""
    config = app[CONFIG]
    schedules = asyncio.create_task(
        app[PLATFORM].triggers.schedule_loop(config.schedule_interval_s), name="nimbus-schedules"
    )
    retention = RetentionSweeper(
        app[STORE], config.activation_retention_days, config.retention_sweep_interval_s
    )
    retention.start()
    try:
        yield
    finally:
        await retention.close()
        schedules.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await schedules


def _token_minter(secret: bytes) -> Callable[[FunctionSpec, float], str]:
    """Tokens valid for the call and one to two minutes more: enough to finish, short if
    leaked. One token per tenant and timeout is reused for a minute (minting costs more
    than a warm call's whole bookkeeping)."""
    cache: dict[tuple[str, float], tuple[float, str]] = {}

    def mint(spec: FunctionSpec, now: float) -> str:
        key = (spec.tenant, spec.timeout_s)
        hit = cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if len(cache) > 10_000:
            cache.clear()
        token = mint_activation_token(secret, spec.tenant, now + spec.timeout_s + 120)
        cache[key] = (now + 60, token)
        return token

    return mint


def create_app(config: Config, *, on_object_event: EventSink | None = None) -> web.Application:
    """The gateway application with the invoker and store it needs, started on app startup.

    `on_object_event` also hears every bucket object event (bucket triggers always do).
    """
    app = web.Application(
        middlewares=[metrics.measure, errors, openwhisk_errors.facade, guard, authenticate],
        client_max_size=config.max_body_bytes,  # a backstop: routes cap bodies (requests.py)
        handler_args=connection_limits(),
    )
    app[CONFIG] = config
    app[PLATFORM] = Platform()
    app[QUOTAS] = Quotas(
        LimitDefaults(
            concurrency=config.max_in_flight_per_tenant,
            rate_per_s=config.tenant_rate_per_s or None,
            backlog=config.tenant_backlog,
        )
    )
    registry = CollectorRegistry()
    app[metrics.REGISTRY] = registry
    app[metrics.HTTP_DURATION] = metrics.http_histogram(registry)
    app[metrics.HTTP_CHILDREN] = {}
    app[ADMIN_HASH] = hash_key(config.admin_key) if config.admin_key else ""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app[TOKEN_SECRET] = load_token_secret(config.data_dir / "token.key")
    app[RUN_DIR] = run_dir_for(config.data_dir)
    # Started in this order, stopped in the reverse one.
    app.cleanup_ctx.extend([_store, _invoker, _background])
    # The router tries a path's candidates in the order they were added: the call route
    # goes first, so the one request that must be cheap matches at its first try.
    for module in (
        invoke,
        health,
        tenants,
        api_keys,
        limits,
        functions,
        activations,
        billing,
        metrics,
        triggers,
        node_routes,
    ):
        app.add_routes(module.routes)

    async def object_event(tenant: str, event: dict[str, Any]) -> None:
        if on_object_event is not None:
            await on_object_event(tenant, event)
        await app[PLATFORM].triggers.object_event(tenant, event)

    bucket_routes.setup(app, config, object_event)  # after _store: same database
    openwhisk.setup(app)  # /api/v1: OpenWhisk's API over the same platform
    web_routes.setup(app)  # /web/{tenant}/{function}: public web functions
    runtime_routes.setup(app)  # GET /v1/runtimes
    console_routes.setup(app)  # /console: the web console's files (docs/console.md)
    return app
