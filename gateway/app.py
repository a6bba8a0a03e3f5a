"""`create_app(config)`: the one place that wires the platform together."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway.auth import hash_key
from gateway.config import Config
from gateway.keys import ADMIN_HASH, CONFIG, PLATFORM, Platform
from gateway.middleware import authenticate, errors
from gateway.routes import activations, functions, health, invoke, tenants
from invoker.drivers.base import ContainerDriver
from invoker.runtime_client import RuntimeClient
from invoker.service import Invoker, InvokerConfig
from invoker.store.sqlite import SqliteStore

log = logging.getLogger("nimbus.gateway")

# A unix socket path must fit in 108 bytes; container directories add about 40.
MAX_RUN_DIR_CHARS = 64


def run_dir_for(data_dir: Path) -> Path:
    """Where container sockets live: under the data dir when the path is short enough."""
    preferred = data_dir.resolve() / "run"
    if len(str(preferred)) <= MAX_RUN_DIR_CHARS:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="nimbus-run-"))


def make_driver(name: str, run_dir: Path) -> ContainerDriver:
    """The container driver by name; `auto` takes Docker wherever an engine answers."""
    from invoker.drivers.docker import DockerDriver, engine_answers
    from invoker.drivers.process import ProcessDriver
    from invoker.images import image_tag, runtime_dir

    if name == "auto":
        name = "docker" if engine_answers() else "process"
        if name == "process":
            log.warning("no Docker engine answers: using the process driver (no isolation)")
    if name == "docker":
        return DockerDriver(run_dir, image_tag)
    if name == "process":
        return ProcessDriver(run_dir, runtime_dir() / "python" / "proxy.py")
    raise ValueError(f"unknown driver {name!r}; choose auto, docker or process")


async def _platform(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(config.db_path)
    await store.open()
    driver = make_driver(config.driver, run_dir_for(config.data_dir))
    client = RuntimeClient()
    invoker = Invoker(driver, client, store, InvokerConfig(owner=config.owner))
    removed = await invoker.start()
    if removed:
        log.info("removed %d containers left by a previous run", removed)
    app[PLATFORM].bind(store, invoker)
    try:
        yield
    finally:
        await invoker.close()
        await client.close()
        await driver.close()
        await store.close()


def create_app(config: Config) -> web.Application:
    """The gateway application with the invoker and store it needs, started on app startup."""
    app = web.Application(middlewares=[errors, authenticate], client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[PLATFORM] = Platform()
    app[ADMIN_HASH] = hash_key(config.admin_key) if config.admin_key else ""
    app.cleanup_ctx.append(_platform)
    for module in (health, tenants, functions, invoke, activations):
        app.add_routes(module.routes)
    return app
