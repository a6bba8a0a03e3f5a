"""A gateway's view of tenant limits: taken from the store, applied at once, enforced."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from gateway.errors import ApiError
from gateway.quotas import Quotas
from invoker.containers.pool import Demand, Pool, PoolLimits, Reject
from invoker.store.sqlite import SqliteStore
from invoker.tenant_limits import LimitDefaults, TenantLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def demand(tenant: str) -> Demand:
    return Demand((tenant, "f", 1), "python:3.11", 128, 1, stem_ok=False)


def caps_into(pool: Pool) -> Callable[[Mapping[str, int]], None]:
    """What the gateway hands the quotas: a way to set the pool's per-tenant caps."""

    def set_caps(caps: Mapping[str, int]) -> None:
        pool.tenant_caps = dict(caps)

    return set_caps


async def test_limits_load_apply_at_once_and_outlive_the_gateway(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open()
    await store.create_tenant("ann", "h-ann")
    await store.create_tenant("bob", "h-bob")
    await store.put_tenant_limits("bob", TenantLimits(backlog=7), 0.0)
    pool = Pool(PoolLimits(max_in_flight_per_tenant=100))
    quotas = Quotas(LimitDefaults(concurrency=100, backlog=1000), refresh_s=3600)
    await quotas.start(store, caps_into(pool))
    try:
        assert (quotas.backlog("ann"), quotas.backlog("bob")) == (1000, 7)  # loaded at start
        assert await quotas.put("ann", TenantLimits(concurrency=1, rate_per_s=1, burst=2))
        assert not await quotas.put("nobody", TenantLimits(backlog=1))
        # Applied here at once, no reload needed: the pool's cap and the rate.
        assert pool.tenant_caps == {"ann": 1}
        assert quotas.effective("ann").burst == 2
        await quotas.reload()  # a reload takes the store's view, which agrees
        assert pool.tenant_caps == {"ann": 1} and quotas.backlog("bob") == 7
    finally:
        await quotas.close()
    assert await store.get_tenant_limits("ann") == TenantLimits(
        concurrency=1, rate_per_s=1.0, burst=2
    )
    await store.close()


async def test_the_pool_rejects_past_a_tenants_own_concurrency_only() -> None:
    pool = Pool(PoolLimits(max_in_flight_per_tenant=100))
    pool.tenant_caps = {"ann": 1}
    assert not isinstance(pool.decide(demand("ann"), 0.0), Reject)
    pool.starting("c1", demand("ann"), "python:3.11", 128, 0.0)  # ann's call takes a slot
    assert isinstance(pool.decide(demand("ann"), 0.0), Reject)
    assert not isinstance(pool.decide(demand("bob"), 0.0), Reject)  # bob keeps the default


async def test_the_rate_is_checked_per_tenant_with_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    quotas = Quotas(LimitDefaults(rate_per_s=None), clock=clock)
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open()
    await store.create_tenant("ann", "h-ann")
    await quotas.start(store, caps_into(Pool(PoolLimits())))
    try:
        await quotas.put("ann", TenantLimits(rate_per_s=0.5, burst=2))
        quotas.check_rate("ann")
        quotas.check_rate("ann")
        with pytest.raises(ApiError) as caught:
            quotas.check_rate("ann")
        error = caught.value
        assert error.status == 429 and error.headers["Retry-After"] == "2"
        assert error.body()["error"]["limit"] == "rate"
        for _ in range(100):
            quotas.check_rate("bob")  # no rate by default
        clock.now += 2.0
        quotas.check_rate("ann")  # a token earned back
    finally:
        await quotas.close()
        await store.close()
