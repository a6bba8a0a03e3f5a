"""`nimbus serve` runs on uvloop, or on asyncio's own loop when the operator asks for it."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from gateway.server import run_loop


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_serve_runs_on_uvloop_by_default() -> None:
    assert issubclass(run_loop(_loop_type(), env={}), uvloop.Loop)


def test_nimbus_event_loop_asyncio_runs_on_asyncios_own_loop() -> None:
    loop_type = run_loop(_loop_type(), env={"NIMBUS_EVENT_LOOP": "asyncio"})
    assert not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_an_unknown_event_loop_is_refused_by_name() -> None:
    coro = _loop_type()
    with pytest.raises(ValueError, match="NIMBUS_EVENT_LOOP"):
        run_loop(coro, env={"NIMBUS_EVENT_LOOP": "tokio"})
    coro.close()
