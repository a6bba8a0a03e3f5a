"""The facade's own small routes, and `setup`, which puts the whole facade on an app.

- `GET /api/v1`: what the API is and which kinds and limits it has (no credentials);
- `GET /api/v1/namespaces`: the caller's one namespace, its tenant;
- `GET /api/v1/namespaces/{ns}/packages`: always empty (packages do not exist here);
- `ANY /api/v1/web/{ns}/default/{action}[.ext]` (no credentials): web actions, `web_actions.py`;
- `POST /v1/openwhisk/credentials` (native, Bearer): another OpenWhisk credential for the
  caller's tenant, shown once, like `POST /v1/tenants/self/keys`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.errors import ApiError
from gateway.keys import CONFIG, PLATFORM
from gateway.middleware import caller
from gateway.openwhisk import actions, activations, triggers_rules, web_actions
from gateway.openwhisk.auth import mint_credential
from gateway.openwhisk.common import BACKGROUND, Background, tenant_of
from gateway.openwhisk.params import window
from gateway.openwhisk.records import DEFAULT_LOGS_MB
from gateway.openwhisk.translation import SUPPORTED_KINDS
from invoker.api import CONCURRENCY_RANGE, MEMORY_MB_RANGE, TIMEOUT_S_RANGE
from invoker.store.tenants import MAX_KEYS_PER_TENANT, TooManyKeysError

routes = web.RouteTableDef()


@routes.get("/api/v1")
async def api_info(request: web.Request) -> web.Response:
    """The API's description, kinds and limits, as OpenWhisk's `GET /api/v1`."""
    config = request.app[CONFIG]
    return web.json_response(
        {
            "description": "Nimbus: an OpenWhisk-compatible API over the Nimbus platform",
            "api_paths": ["/api/v1"],
            "api_version": "1.0.0",
            "api_version_path": "v1",
            "build": "nimbus",
            "runtimes": {
                "python": [
                    {"kind": kind, "default": kind == "python:3", "deprecated": False}
                    for kind in SUPPORTED_KINDS
                    if kind.startswith("python")
                ],
                "nodejs": [
                    {"kind": kind, "default": kind == "nodejs:default", "deprecated": False}
                    for kind in SUPPORTED_KINDS
                    if kind.startswith("nodejs")
                ],
            },
            "limits": {
                "actions_per_minute": round(config.tenant_rate_per_s * 60)
                if config.tenant_rate_per_s
                else None,
                "concurrent_actions": config.max_in_flight_per_tenant,
                "min_action_duration": TIMEOUT_S_RANGE[0] * 1000,
                "max_action_duration": TIMEOUT_S_RANGE[1] * 1000,
                "min_action_memory": MEMORY_MB_RANGE[0] * 2**20,
                "max_action_memory": MEMORY_MB_RANGE[1] * 2**20,
                "min_action_concurrency": CONCURRENCY_RANGE[0],
                "max_action_concurrency": CONCURRENCY_RANGE[1],
                "min_action_logs": 0,
                "max_action_logs": DEFAULT_LOGS_MB * 2**20,
                "max_action_code_bytes": config.max_code_bytes,
            },
        }
    )


@routes.get("/api/v1/namespaces")
async def namespaces(request: web.Request) -> web.Response:
    """The caller's namespaces: its tenant's name."""
    return web.json_response([caller(request).tenant])


@routes.get("/api/v1/namespaces/{namespace}/packages")
async def packages(request: web.Request) -> web.Response:
    """No packages exist here: an empty list (or a count of 0)."""
    tenant_of(request)
    if window(request.query).count:
        return web.json_response({"packages": 0})
    return web.json_response([])


@routes.post("/v1/openwhisk/credentials")
async def create_credentials(request: web.Request) -> web.Response:
    """Another OpenWhisk credential for the caller's tenant, shown once: 201
    `{"key_id", "created", "uuid", "key", "auth"}`; revoke it as any key, by `key_id`."""
    who = caller(request)
    if who.admin or who.via_token:
        raise ApiError(403, "only a tenant's API key mints OpenWhisk credentials")
    try:
        minted = await mint_credential(request.app[PLATFORM].store, who.tenant, time.time())
    except TooManyKeysError:
        raise ApiError(
            409, f"a tenant holds at most {MAX_KEYS_PER_TENANT} keys; revoke one first"
        ) from None
    if minted is None:  # the tenant was deleted under this request
        raise ApiError(401, "invalid API key")
    return web.json_response({**minted.info.to_json(), **minted.to_json()}, status=201)


async def _background(app: web.Application) -> AsyncIterator[None]:
    app[BACKGROUND] = Background()
    yield
    await app[BACKGROUND].close()


def setup(app: web.Application) -> None:
    """Add the facade's routes and its lifetime (after the platform's: stopped first)."""
    for module in (actions, activations, triggers_rules):
        app.add_routes(module.routes)
    app.add_routes(routes)
    web_actions.add_routes(app)
    app.cleanup_ctx.append(_background)
