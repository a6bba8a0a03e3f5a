"""The hot path's read cache (gateway/cache.py): entries live for their TTL, callers that
miss together share one load, and a change drops both the entry and a load under way."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Store:
    """A store read that takes a while, counting its reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.value = "v1"
        self.gate = asyncio.Event()
        self.began = asyncio.Event()

    async def read(self) -> str:
        self.reads += 1
        self.began.set()
        value = self.value  # what the store held when the read began
        await self.gate.wait()
        return value


async def test_callers_that_miss_together_share_one_read() -> None:
    cache: TtlCache[str, str] = TtlCache(2.0, clock=Clock())
    store = Store()
    waiting = [asyncio.create_task(cache.get("f", store.read)) for _ in range(16)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 16
    assert store.reads == 1
    assert await cache.get("f", store.read) == "v1" and store.reads == 1  # kept


async def test_an_entry_is_read_again_once_its_ttl_passes() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(2.0, clock=clock)
    store = Store()
    store.gate.set()
    await cache.get("f", store.read)
    clock.now = 1.9
    await cache.get("f", store.read)
    assert store.reads == 1
    clock.now = 2.1
    store.value = "v2"
    assert await cache.get("f", store.read) == "v2" and store.reads == 2


async def test_a_caller_going_away_does_not_cancel_the_others_read() -> None:
    cache: TtlCache[str, str] = TtlCache(2.0, clock=Clock())
    store = Store()
    first = asyncio.create_task(cache.get("f", store.read))
    second = asyncio.create_task(cache.get("f", store.read))
    await asyncio.sleep(0)
    first.cancel()
    store.gate.set()
    assert await second == "v1" and store.reads == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_change_during_a_read_is_not_hidden_by_it() -> None:
    cache: TtlCache[str, str] = TtlCache(2.0, clock=Clock())
    store = Store()
    before = asyncio.create_task(cache.get("f", store.read))
    await store.began.wait()
    store.value = "v2"  # this gateway changes the function while the read is under way
    cache.invalidate("f")
    store.gate.set()
    await before
    assert await cache.get("f", store.read) == "v2" and store.reads == 2


async def test_a_failed_read_reaches_every_caller_and_is_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(2.0, clock=Clock())
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise OSError("store down")

    results = await asyncio.gather(
        *(cache.get("f", broken) for _ in range(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [OSError] * 3 and calls == 1
    with pytest.raises(OSError):
        await cache.get("f", broken)
    assert calls == 2
