"""The runtimes functions can be deployed on, with the versions that really run them.

The registry (`invoker.runtimes`) says what each runtime is; the version is measured
where the functions run: the label `nimbus images build` put on the runtime's image (the
version its interpreter printed), or, with the process driver, this machine's own
interpreter. Under Kubernetes the images live on the cluster's nodes: the version is
null rather than a guess. Measured once per app, on the first request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway.keys import CONFIG, PLATFORM
from invoker.runtimes import DEFAULT_RUNTIME, REGISTRY, Runtime

routes = web.RouteTableDef()

DOCKER_DRIVERS = frozenset({"docker", "docker-remote", "docker-hosts"})


def _where(runtime: Runtime, driver: str, image_prefix: str) -> tuple[str | None, str | None]:
    """(image, version) of a runtime under a driver. Blocking: hashes files, asks Docker
    or runs an interpreter."""
    if driver in DOCKER_DRIVERS:
        from invoker.images import image_tag, image_version

        tag = image_tag(runtime.name)
        return tag, image_version(tag)
    if driver == "process":
        from invoker.drivers.process import host_version

        return None, host_version(runtime)
    if driver == "kubernetes":
        return image_prefix + runtime.name, None
    return None, None


def runtime_json(
    runtime: Runtime, image: str | None, version: str | None, stem_cells: int
) -> dict[str, Any]:
    """One runtime as `GET /v1/runtimes` lists it (pure)."""
    return {
        "name": runtime.name,
        "family": runtime.family,
        "version": version,
        "image": image,
        "protocol": runtime.protocol,
        "default": runtime.name == DEFAULT_RUNTIME,
        "code_formats": [
            {"kind": fmt.kind, "description": fmt.description} for fmt in runtime.code_formats
        ],
        "handler": runtime.rules.handler_help,
        "default_handler": runtime.default_handler,
        "stem_cells": stem_cells,
    }


def _listing(
    driver: str, image_prefix: str, stem_cells: Sequence[tuple[str, int, int]]
) -> list[dict[str, Any]]:
    out = []
    for runtime in REGISTRY:
        image, version = _where(runtime, driver, image_prefix)
        stems = sum(count for name, _, count in stem_cells if name == runtime.name)
        out.append(runtime_json(runtime, image, version, stems))
    return out


class RuntimeCatalog:
    """The listing, measured once: images and interpreters do not change under a running
    platform (a rebuilt image gets a new tag, which a restart picks up)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._listing: list[dict[str, Any]] | None = None

    async def listing(self, app: web.Application) -> list[dict[str, Any]]:
        """Every registered runtime, measured on the first call."""
        async with self._lock:
            if self._listing is None:
                config = app[CONFIG]
                self._listing = await asyncio.to_thread(
                    _listing,
                    app[PLATFORM].ops.driver_name,
                    config.k8s_image_prefix,
                    config.stem_cells,
                )
        return self._listing


CATALOG = web.AppKey("runtime_catalog", RuntimeCatalog)


@routes.get("/v1/runtimes")
async def list_runtimes(request: web.Request) -> web.Response:
    """Every runtime a function can name, with its version, code formats and stem cells."""
    listing = await request.app[CATALOG].listing(request.app)
    return web.json_response({"runtimes": listing})


def setup(app: web.Application) -> None:
    """Add `GET /v1/runtimes` and the catalog it measures once."""
    app[CATALOG] = RuntimeCatalog()
    app.add_routes(routes)
