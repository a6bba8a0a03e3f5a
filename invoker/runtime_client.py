"""The /init and /run protocol, spoken once for every driver over one shared aiohttp session.

Containers are reached either at ``unix:/path/to.sock`` (Docker and process drivers:
a socket in a bind-mounted directory, which works with networking disabled and is
faster than a published port) or at ``http://host:port`` (Kubernetes pod IPs). One
`aiohttp.ClientSession` serves both: its connector opens unix connections for hosts
it has registered and TCP connections for everything else, so connection pooling and
keep-alive work per container either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

UNIX_PREFIX = "unix:"
JSON_HEADERS = {"Content-Type": "application/json"}


class RuntimeError_(Exception):
    """The container did not answer the protocol (a platform error, not the function's)."""


class RunTimeout(Exception):
    """The call outlived its deadline."""


@dataclass(frozen=True)
class RunResponse:
    """What the proxy answered to /init or /run."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == 200


class _RoutingConnector(aiohttp.TCPConnector):
    """TCP connector that opens unix-socket connections for registered host names."""

    def __init__(self, paths: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._paths = paths

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: Any, timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        path = self._paths.get(req.host)
        if path is None:
            return await super()._create_connection(req, traces, timeout)
        try:
            async with asyncio.timeout(timeout.sock_connect):
                _, proto = await self._loop.create_unix_connection(self._factory, path)
        except OSError as exc:
            raise aiohttp.ClientConnectionError(f"cannot connect to {path}: {exc}") from exc
        return proto


class RuntimeClient:
    """Speaks /init, /run and /healthz to runtime proxies. Create one per process."""

    def __init__(self, *, connections: int = 1000) -> None:
        self._paths: dict[str, str] = {}
        self._headers: dict[str, dict[str, str]] = {}  # address -> request headers
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._urls: dict[tuple[str, str], URL] = {}
        self._session: aiohttp.ClientSession | None = None
        self._connections = connections

    def _url(self, address: str, path: str) -> URL:
        """The parsed URL of `path` on a container, kept: parsing it per call costs."""
        url = self._urls.get((address, path))
        if url is None:
            url = self._urls[(address, path)] = URL(self._base_url(address) + path)
        return url

    def _base_url(self, address: str) -> str:
        if address.startswith(UNIX_PREFIX):
            path = address[len(UNIX_PREFIX) :]
            host = "u" + hashlib.sha1(path.encode()).hexdigest()[:20] + ".sock"
            self._paths[host] = path
            return f"http://{host}"
        return address.rstrip("/")

    def trust(self, address: str, token: str | None) -> None:
        """Send `token` to the proxy at `address` (None: it asks for none)."""
        if token:
            self._headers[address] = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
        else:  # a new container at an address an earlier one used
            self._headers.pop(address, None)

    def forget(self, address: str) -> None:
        """Drop the routing entry and token of a container that is gone."""
        self._headers.pop(address, None)
        for path in ("/init", "/run", "/healthz"):
            self._urls.pop((address, path), None)
        if address.startswith(UNIX_PREFIX):
            path = address[len(UNIX_PREFIX) :]
            host = "u" + hashlib.sha1(path.encode()).hexdigest()[:20] + ".sock"
            self._paths.pop(host, None)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = _RoutingConnector(
                self._paths, limit=self._connections, limit_per_host=0, keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=json.dumps, raise_for_status=False
            )
        return self._session

    async def close(self) -> None:
        """Close the shared session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self, address: str, path: str, payload: dict[str, Any], timeout: float
    ) -> RunResponse:
        url = self._url(address, path)
        # Bytes and ready-made headers and timeouts: aiohttp's JSON payload and a timeout
        # object per call are a measurable share of a warm call's CPU.
        body = json.dumps(payload).encode()
        limit = self._timeouts.get(timeout)
        if limit is None:
            limit = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self.session.post(
                url, data=body, headers=self._headers.get(address, JSON_HEADERS), timeout=limit
            ) as resp:
                raw = await resp.read()
        except TimeoutError as exc:
            raise RunTimeout(f"{path} did not answer within {timeout:g} s") from exc
        except aiohttp.ClientError as exc:
            raise RuntimeError_(f"{path} failed: {exc}") from exc
        try:
            body = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise RuntimeError_(f"{path} answered with invalid JSON") from exc
        if not isinstance(body, dict):
            raise RuntimeError_(f"{path} answered with a non-object body")
        return RunResponse(resp.status, body)

    async def wait_ready(self, address: str, timeout: float) -> None:
        """Poll /healthz until the proxy answers or `timeout` passes."""
        url = self._base_url(address) + "/healthz"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.002
        last: Exception | None = None
        while loop.time() < deadline:
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        raise RuntimeError_(f"runtime at {address} not ready after {timeout:g} s: {last}")

    async def init(
        self,
        address: str,
        *,
        code: str,
        binary: bool,
        main: str,
        env: dict[str, str],
        timeout: float,
    ) -> RunResponse:
        """Send the function's code once; a non-200 answer means the code cannot load."""
        payload = {"value": {"code": code, "binary": binary, "main": main, "env": env}}
        return await self._post(address, "/init", payload, timeout)

    async def run(self, address: str, payload: dict[str, Any], timeout: float) -> RunResponse:
        """Run one activation; raises RunTimeout past `timeout`."""
        return await self._post(address, "/run", payload, timeout)
