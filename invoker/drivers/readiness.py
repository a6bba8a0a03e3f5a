"""Waiting for a runtime proxy to accept connections or answer /healthz."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from invoker.drivers.base import DriverError


async def http_healthz_probe(address: str, *, timeout_s: float = 1.0) -> bool:
    """True when ``GET {address}/healthz`` answers 200; False on any network failure.

    A TCP connect is not proof on its own: a published port (Docker's userland proxy) or a
    Service accepts before the container listens.
    """
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(f"{address}/healthz") as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def wait_for_unix_socket(path: Path, timeout: float) -> None:
    """Return once `path` accepts a connection; DriverError after `timeout` seconds.

    Polls with a short, growing delay: the proxy usually binds within tens of
    milliseconds, and every millisecond here is cold-start latency.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.001
    while True:
        try:
            _, writer = await asyncio.open_unix_connection(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            if loop.time() >= deadline:
                raise DriverError(f"no runtime listening at {path} after {timeout:g} s") from None
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.004)
            continue
        except OSError as exc:  # e.g. out of file descriptors: waiting will not help
            raise DriverError(f"cannot connect to the runtime at {path}: {exc}") from exc
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return
