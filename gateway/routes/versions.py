"""A function's versions and aliases, and which version a call names.

`GET /v1/functions/{name}/versions[/{version}]`; `PUT|GET|DELETE
/v1/functions/{name}/aliases/{alias}` and `GET .../aliases`. `resolve_call` turns an
invoke's `name:qualifier`, `?version=` or `?alias=` (and `X-Nimbus-Request-Id`) into the
version that runs (`Operations.resolve`, `invoker.versions`).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.errors import ApiError, bad_request, not_found
from gateway.keys import PLATFORM
from gateway.middleware import caller
from gateway.requests import json_object
from gateway.schemas import check_function_name
from invoker.operations import Resolved
from invoker.store.base import MissingVersions, StoredFunction
from invoker.store.versions import version_json
from invoker.versions import (
    MAX_REQUEST_ID,
    REQUEST_ID_HEADER,
    UnknownAlias,
    UnknownVersion,
    VersionError,
    check_alias_name,
    parse_version,
    qualifier_of,
    split_from_body,
    split_target,
)

routes = web.RouteTableDef()

_BASE = "/v1/functions/{name}"


def _invalid(exc: VersionError) -> ApiError:
    return bad_request(exc.message, exc.field)


async def resolve_call(request: web.Request, tenant: str) -> Resolved:
    """The version an invoke of `{name}` (maybe `name:version` or `name:alias`, or with
    `?version=` / `?alias=`) runs. 400 for a bad qualifier, 404 when the function, the
    version or the alias is not there."""
    name, path_qualifier = split_target(request.match_info["name"])
    name = check_function_name(name)
    request_id = request.headers.get(REQUEST_ID_HEADER) or None
    if request_id is not None and len(request_id) > MAX_REQUEST_ID:
        raise bad_request(f"{REQUEST_ID_HEADER} is at most {MAX_REQUEST_ID} characters", "id")
    try:
        qualifier = qualifier_of(
            path_qualifier, request.query.get("version"), request.query.get("alias")
        )
    except VersionError as exc:
        raise _invalid(exc) from None
    platform = request.app[PLATFORM]
    if qualifier.latest:  # the common call: through the short-lived cache
        latest = await platform.function(tenant, name)
        if latest is None:
            raise not_found(f"function {name!r}")
        return Resolved(latest)
    try:
        resolved = await platform.ops.resolve(tenant, name, qualifier, request_id=request_id)
    except (UnknownVersion, UnknownAlias) as exc:
        raise ApiError(404, str(exc)) from None
    if resolved is None:
        raise not_found(f"function {name!r}")
    return resolved


def _function_name(request: web.Request) -> str:
    return check_function_name(request.match_info["name"])


def _alias_name(request: web.Request) -> str:
    try:
        return check_alias_name(request.match_info["alias"])
    except VersionError as exc:
        raise _invalid(exc) from None


async def _existing(request: web.Request, tenant: str, name: str) -> StoredFunction:
    """The function (latest), or 404."""
    found = await request.app[PLATFORM].store.get_function(tenant, name)
    if found is None:
        raise not_found(f"function {name!r}")
    return found


async def _named_by(request: web.Request, tenant: str, name: str) -> dict[int, list[str]]:
    """Version -> the aliases that name it."""
    named: dict[int, list[str]] = {}
    for alias in await request.app[PLATFORM].store.list_aliases(tenant, name):
        for version, _ in alias.split:
            named.setdefault(version, []).append(alias.name)
    return named


@routes.get(_BASE + "/versions")
async def list_versions(request: web.Request) -> web.Response:
    """A function's versions, newest first, with the aliases that name each."""
    who = caller(request)
    name = _function_name(request)
    latest = await _existing(request, who.tenant, name)
    store = request.app[PLATFORM].store
    named = await _named_by(request, who.tenant, name)
    shown = [
        version_json(v, named.get(v.spec.version, ()))
        for v in await store.list_versions(who.tenant, name)
    ]
    return web.json_response({"latest": latest.spec.version, "versions": shown})


@routes.get(_BASE + "/versions/{version}")
async def get_version(request: web.Request) -> web.Response:
    """One version of a function."""
    who = caller(request)
    name = _function_name(request)
    try:
        number = parse_version(request.match_info["version"])
    except VersionError as exc:
        raise _invalid(exc) from None
    await _existing(request, who.tenant, name)
    found = await request.app[PLATFORM].store.get_version(who.tenant, name, number)
    if found is None:
        raise not_found(f"version {number} of function {name!r}")
    named = await _named_by(request, who.tenant, name)
    return web.json_response(version_json(found, named.get(number, ())))


@routes.get(_BASE + "/code")
async def get_code(request: web.Request) -> web.Response:
    """The code a version runs, as it was deployed: a source file or a zip
    (`?version=N`; the latest without). 404 for a sequence or an image function."""
    who = caller(request)
    name = _function_name(request)
    found = await _existing(request, who.tenant, name)
    asked = request.query.get("version")
    if asked is not None:
        try:
            number = parse_version(asked)
        except VersionError as exc:
            raise _invalid(exc) from None
        version = await request.app[PLATFORM].store.get_version(who.tenant, name, number)
        if version is None:
            raise not_found(f"version {number} of function {name!r}")
        found = version
    spec = found.spec
    if spec.sequence or spec.image is not None:
        raise not_found(f"code of function {name!r} (a sequence or an image has none)")
    code = await request.app[PLATFORM].store.get_code(spec.code_sha256)
    if code is None:
        raise not_found(f"code of function {name!r}")
    zipped = spec.code_kind == "zip"
    suffix = "zip" if zipped else "js" if spec.runtime.startswith("nodejs") else "py"
    return web.Response(
        body=code,
        content_type="application/zip" if zipped else "text/plain",
        charset=None if zipped else "utf-8",
        headers={
            "X-Nimbus-Code-Kind": spec.code_kind,
            "X-Nimbus-Code-Sha256": spec.code_sha256,
            "X-Nimbus-Function-Version": str(spec.version),
            "Content-Disposition": f'attachment; filename="{name}.{suffix}"',
        },
    )


@routes.put(_BASE + "/aliases/{alias}")
async def put_alias(request: web.Request) -> web.Response:
    """Create (201) or move (200) an alias: `{"version": 3}`, or a weighted split
    `{"versions": {"3": 0.9, "4": 0.1}}`. Rollback is moving it back."""
    who = caller(request)
    name = _function_name(request)
    alias = _alias_name(request)
    body: dict[str, Any] = await json_object(request)
    try:
        split = split_from_body(body)
    except VersionError as exc:
        raise _invalid(exc) from None
    store = request.app[PLATFORM].store
    try:
        made = await store.put_alias(who.tenant, name, alias, split, time.time())
    except MissingVersions as exc:
        missing = ", ".join(str(v) for v in exc.versions)
        field = "version" if "version" in body else "versions"
        raise bad_request(f"function {name!r} has no version {missing}", field) from None
    if made is None:
        raise not_found(f"function {name!r}")
    stored, created = made
    return web.json_response(stored.to_json(), status=201 if created else 200)


@routes.get(_BASE + "/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    """A function's aliases, by name."""
    who = caller(request)
    name = _function_name(request)
    await _existing(request, who.tenant, name)
    found = await request.app[PLATFORM].store.list_aliases(who.tenant, name)
    return web.json_response({"aliases": [a.to_json() for a in found]})


@routes.get(_BASE + "/aliases/{alias}")
async def get_alias(request: web.Request) -> web.Response:
    """One alias."""
    who = caller(request)
    name = _function_name(request)
    alias = _alias_name(request)
    found = await request.app[PLATFORM].store.get_alias(who.tenant, name, alias)
    if found is None:
        raise not_found(f"alias {alias!r} of function {name!r}")
    return web.json_response(found.to_json())


@routes.delete(_BASE + "/aliases/{alias}")
async def delete_alias(request: web.Request) -> web.Response:
    """Delete an alias (its versions stay, until retention prunes them)."""
    who = caller(request)
    name = _function_name(request)
    alias = _alias_name(request)
    if not await request.app[PLATFORM].store.delete_alias(who.tenant, name, alias):
        raise not_found(f"alias {alias!r} of function {name!r}")
    return web.json_response({"deleted": alias})
