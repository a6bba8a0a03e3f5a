"""A caller that gives up on a container still being started must not leak it: the late
create (or /init) finds its slot gone, removes the container and gives its node share back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from invoker import call_path
from invoker.api import Status
from invoker.drivers.base import ContainerHandle, ContainerSpec
from invoker.nodes.model import Flavor
from tests.unit.call_path_fakes import Rig, rig, until

TINY = Flavor("tiny", 1.0, 512, 0.01)


def booked(r: Rig) -> list[str]:
    assert r.nodes is not None
    return [c for n in r.nodes.nodes.values() for c in n.allocations]


@pytest.fixture(autouse=True)
def short_start_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_path, "INIT_TIMEOUT_S", 0.02)
    monkeypatch.setattr(call_path, "START_TIMEOUT_S", 0.02)


async def test_a_container_created_after_its_caller_gave_up_is_removed(tmp_path: Path) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        engine_answers = asyncio.Event()
        create = r.driver.create

        async def slow_create(spec: ContainerSpec) -> ContainerHandle:
            await engine_answers.wait()
            return await create(spec)

        r.driver.create = slow_create  # type: ignore[method-assign]
        spec = await r.deploy("a")
        result = await r.call(spec)
        assert result.status is Status.PLATFORM_ERROR  # the start timed out
        assert booked(r) == []

        engine_answers.set()  # the engine finally starts the container
        assert await until(lambda: len(r.driver.destroyed) == 1)
        assert r.driver.live == {} and booked(r) == []
        assert len(r.invoker.slots) == 0


async def test_a_container_loaded_after_its_caller_gave_up_is_removed(tmp_path: Path) -> None:
    async with rig(tmp_path, node_flavors=(TINY,)) as r:
        init_answers = asyncio.Event()
        init = r.runtime.init

        async def slow_init(address: str, **kwargs: object) -> object:
            await init_answers.wait()
            return await init(address, **kwargs)  # type: ignore[arg-type]

        r.runtime.init = slow_init  # type: ignore[method-assign,assignment]
        spec = await r.deploy("a")
        result = await r.call(spec)
        assert result.status is Status.PLATFORM_ERROR
        init_answers.set()
        assert await until(lambda: r.driver.live == {} and booked(r) == [])
        # A call now gets a container of its own, as if nothing had happened.
        assert (await r.call(spec)).status is Status.SUCCESS
