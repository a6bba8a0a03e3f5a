"""Typed keys for what `create_app` puts on the application."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aiohttp import web

from gateway.cache import TtlCache
from gateway.config import Config
from gateway.triggers import TriggerEngine
from invoker.api import ActivationIds
from invoker.operations import Operations
from invoker.store.base import Store, StoredFunction
from invoker.store.tenants import DeletedTenant

KEY_CACHE_TTL_S = 10.0
"""How long a gateway trusts what it learned of a key or tenant: a key revoked (or a tenant
deleted) through another gateway of the same store stops working there within this."""


class Platform:
    """The parts started when the app starts (so they live in the app's own event loop)."""

    def __init__(self) -> None:
        self._store: Store | None = None
        self._ops: Operations | None = None
        self._triggers: TriggerEngine | None = None
        self.ids = ActivationIds()
        self.functions: TtlCache[tuple[str, str], StoredFunction | None] = TtlCache(2.0)
        self.tenants: TtlCache[str, str | None] = TtlCache(KEY_CACHE_TTL_S)
        self.live_tenants: TtlCache[str, bool | None] = TtlCache(KEY_CACHE_TTL_S)
        self._cursor_key: bytes | None = None

    def bind(self, store: Store, ops: Operations) -> None:
        """Called once by the app's startup context."""
        self._store, self._ops = store, ops
        self._triggers = TriggerEngine(store, ops)
        ops.on_change(lambda tenant, name: self.functions.invalidate((tenant, name)))

    @property
    def triggers(self) -> TriggerEngine:
        if self._triggers is None:
            raise RuntimeError("the platform has not started")
        return self._triggers

    @property
    def ops(self) -> Operations:
        """What the handlers may ask of the invoker."""
        if self._ops is None:
            raise RuntimeError("the platform has not started")
        return self._ops

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the platform has not started")
        return self._store

    async def function(self, tenant: str, name: str) -> StoredFunction | None:
        """A function by name, through the short-lived cache."""
        return await self.functions.get(
            (tenant, name), lambda: self.store.get_function(tenant, name)
        )

    async def tenant_for_key(self, key_hash: str) -> str | None:
        """The tenant of an API key hash, through the cache."""
        return await self.tenants.get(key_hash, lambda: self.store.tenant_for_key(key_hash))

    async def tenant_is_live(self, name: str) -> bool:
        """Whether the tenant exists, through the cache (an activation token of a deleted
        tenant must stop working although its signature still holds)."""

        async def load() -> bool | None:
            return True if await self.store.tenant_exists(name) else None

        return await self.live_tenants.get(name, load) is True

    def forget_keys(self, key_hashes: Iterable[str]) -> None:
        """This gateway revoked these keys: no cached answer may let them in again."""
        for key_hash in key_hashes:
            self.tenants.invalidate(key_hash)

    def forget_tenant(self, name: str, deleted: DeletedTenant) -> None:
        """This gateway deleted the tenant: drop its keys, its liveness and its functions."""
        self.forget_keys(deleted.key_hashes)
        self.live_tenants.invalidate(name)
        for function in deleted.functions:
            self.functions.invalidate((name, function))

    async def cursor_key(self) -> bytes:
        """The key of listing cursors: the store's, so every gateway reads every cursor."""
        if self._cursor_key is None:
            self._cursor_key = await self.store.secret("activation-cursors")
        return self._cursor_key


CONFIG = web.AppKey("config", Config)
PLATFORM = web.AppKey("platform", Platform)
ADMIN_HASH = web.AppKey("admin_hash", str)
TOKEN_SECRET = web.AppKey("token_secret", bytes)
RUN_DIR = web.AppKey("run_dir", Path)
STORE = web.AppKey("store", Store)
