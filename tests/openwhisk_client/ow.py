"""A curl-like client of `/api/v1` for tests: HTTP Basic, JSON in and out."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.conftest import Api


@dataclass
class Ow:
    """One tenant's OpenWhisk credential against one running gateway."""

    api: Api
    auth: str  # "uuid:key"
    namespace: str = "_"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: str | None = None,
        **query: Any,
    ) -> tuple[int, Any]:
        """One request under `/api/v1`; returns (status, decoded JSON or None)."""
        params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in query.items()}
        kwargs: dict[str, Any] = {"headers": self.headers(auth), "params": params}
        if body is not None:
            kwargs["json"] = body
        async with self.api.session.request(
            method, f"{self.api.url}/api/v1{path}", **kwargs
        ) as resp:
            raw = await resp.read()
            return resp.status, (await resp.json(content_type=None) if raw else None)

    def headers(self, auth: str | None = None) -> dict[str, str]:
        """HTTP Basic of `uuid:key` (this client's unless given)."""
        user, _, password = (auth or self.auth).partition(":")
        return {"Authorization": aiohttp.encode_basic_auth(user, password)}

    def ns(self, collection: str, name: str = "") -> str:
        """`/namespaces/{ns}/{collection}[/{name}]`."""
        return f"/namespaces/{self.namespace}/{collection}" + (f"/{name}" if name else "")

    async def put_action(self, name: str, code: str, **fields: Any) -> dict[str, Any]:
        """Create (or overwrite) a Python action; asserts it was accepted."""
        body = {"exec": {"kind": "python:3", "code": code}, **fields}
        status, doc = await self.call("PUT", self.ns("actions", name), body, overwrite=True)
        assert status == 200, doc
        return dict(doc)

    async def activation(self, activation_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The activation record once it has ended."""
        deadline = time.monotonic() + timeout
        while True:
            status, doc = await self.call("GET", self.ns("activations", activation_id))
            if status == 200:
                return dict(doc)
            assert status == 404, doc
            assert time.monotonic() < deadline, f"activation {activation_id} never ended"
            await asyncio.sleep(0.1)


async def tenant_with_credential(api: Api, name: str) -> tuple[str, Ow]:
    """A new tenant: its native API key and its OpenWhisk client."""
    status, created, _ = await api.call("POST", "/v1/tenants", {"name": name})
    assert status == 201, created
    return created["api_key"], Ow(api, created["openwhisk"]["auth"])


def is_ow_error(status: int, body: Any, expected: int) -> bool:
    """Is this OpenWhisk's error shape with the expected status?"""
    return (
        status == expected
        and isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("code"), str)
    )
