"""Typed keys for what `create_app` puts on the application."""

from __future__ import annotations

from aiohttp import web

from gateway.config import Config
from invoker.service import Invoker
from invoker.store.base import Store


class Platform:
    """The parts started when the app starts (so they live in the app's own event loop)."""

    def __init__(self) -> None:
        self._store: Store | None = None
        self._invoker: Invoker | None = None

    def bind(self, store: Store, invoker: Invoker) -> None:
        """Called once by the app's startup context."""
        self._store, self._invoker = store, invoker

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the platform has not started")
        return self._store

    @property
    def invoker(self) -> Invoker:
        if self._invoker is None:
            raise RuntimeError("the platform has not started")
        return self._invoker


CONFIG = web.AppKey("config", Config)
PLATFORM = web.AppKey("platform", Platform)
ADMIN_HASH = web.AppKey("admin_hash", str)
