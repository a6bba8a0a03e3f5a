"""`serve_until_signalled` (gateway/server.py): a SIGTERM ends serving cleanly, also while
the sites are still starting (a worker waiting for its peers), and the app's cleanup runs
either way; a start that fails is an error, not a silent stop."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from aiohttp import web

from gateway.server import serve_until_signalled


def app_with_cleanup(cleaned: list[str]) -> web.Application:
    app = web.Application()

    async def cleanup(app: web.Application) -> None:
        cleaned.append("cleaned")

    app.on_cleanup.append(cleanup)
    return app


async def test_sigterm_while_starting_ends_the_start_and_cleans_up() -> None:
    cleaned: list[str] = []
    reached: list[str] = []

    async def start(runner: web.AppRunner) -> None:
        reached.append("starting")
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)  # waiting for peers that never come
        reached.append("port opened")

    await asyncio.wait_for(serve_until_signalled(app_with_cleanup(cleaned), start), 10)
    assert reached == ["starting"] and cleaned == ["cleaned"]


async def test_sigterm_after_starting_stops_serving_and_cleans_up() -> None:
    cleaned: list[str] = []

    async def start(runner: web.AppRunner) -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)

    await asyncio.wait_for(serve_until_signalled(app_with_cleanup(cleaned), start), 10)
    assert cleaned == ["cleaned"]


async def test_a_failed_start_raises_and_still_cleans_up() -> None:
    cleaned: list[str] = []

    async def start(runner: web.AppRunner) -> None:
        raise OSError("address in use")

    with pytest.raises(OSError, match="address in use"):
        await serve_until_signalled(app_with_cleanup(cleaned), start)
    assert cleaned == ["cleaned"]
