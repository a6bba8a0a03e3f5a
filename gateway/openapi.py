"""The OpenAPI 3.1 document of the HTTP API, served at `GET /v1/openapi.json`.

Built from the route table in `gateway/openapi_routes.py` (one entry per route) and the
schemas in `gateway/openapi_schemas.py`. The same table tells the request guard which query
parameters a route takes (`unknown_query_parameter`), so the document and the server agree.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from aiohttp import web

from gateway.openapi_model import ADMIN, PUBLIC, Content, Route
from gateway.openapi_routes import PATH_PARAMETERS, ROUTES, declared_query
from gateway.openapi_schemas import COMPONENTS
from gateway.openapi_types import Schema, ref

TITLE = "Nimbus"
VERSION = "1"
_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_ERROR_TEXT = {
    400: "bad input; `field` names what to fix (`body` for the body as a whole)",
    401: "no key, or a key that matches no tenant",
    403: "a tenant key on an admin endpoint",
    404: "no such thing in your tenant",
    408: "the request body did not arrive in time",
    409: "conflicts with what exists",
    429: "a limit is reached; retry after `Retry-After` seconds",
    502: "the function raised, failed to load, or its container died",
    503: "the platform could not run the function",
    504: "the function outlived its timeout",
}


def path_parameters(path: str) -> list[str]:
    """The parameter names of a route template, in order (`{key:.+}` is `key`)."""
    return _PARAMETER.findall(path)


def error_statuses(path: str, route: Route) -> list[int]:
    """Every error status an operation can answer: the automatic ones and its own."""
    statuses = {400, *route.errors}
    if route.auth != PUBLIC:
        statuses.add(401)
    if route.auth == ADMIN:
        statuses.add(403)
    if path_parameters(path):
        statuses.add(404)
    if route.body is not None and "application/json" in route.body:
        statuses.add(408)
    return sorted(statuses)


def _content(content: Content) -> dict[str, Any]:
    return {media: {"schema": schema} for media, schema in content.items()}


def _responses(path: str, route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, content in route.ok.items():
        response: dict[str, Any] = {"description": "success"}
        if content:
            response["content"] = _content(content)
        responses[str(status)] = response
    for status in error_statuses(path, route):
        response = {
            "description": _ERROR_TEXT.get(status, "error"),
            "content": _content({"application/json": ref("Error")}),
        }
        if status == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[str(status)] = response
    return responses


def _parameters(path: str, route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": route.path.get(name, PATH_PARAMETERS.get(name, {"type": "string"})),
        }
        for name in path_parameters(path)
    ]
    params.extend(
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in route.query.items()
    )
    return params


def operation(method: str, path: str, route: Route) -> dict[str, Any]:
    """The OpenAPI operation object of one route."""
    op: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()}{path}").strip("_"),
        "summary": route.summary,
        "responses": _responses(path, route),
    }
    params = _parameters(path, route)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": route.body_required, "content": _content(route.body)}
    if route.auth == PUBLIC:
        op["security"] = []
    return op


def openapi_path(path: str) -> str:
    """An aiohttp template as an OpenAPI path: `{key:.+}` becomes `{key}`."""
    return _PARAMETER.sub(lambda m: "{" + m.group(1) + "}", path)


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once; it does not depend on configuration)."""
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), route in ROUTES.items():
        paths.setdefault(openapi_path(path), {})[method.lower()] = operation(method, path, route)
    schemas: dict[str, Schema] = dict(COMPONENTS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Nimbus HTTP API; docs/api.md is the prose contract. Every error "
            'is {"error": {"message", "field"?}}.',
        },
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }


def unknown_query_parameter(request: web.Request) -> str | None:
    """The first query parameter this request's route does not take (None: all known, or
    a route without an entry in the table)."""
    resource = request.match_info.route.resource
    if resource is None or not request.query:
        return None
    declared = declared_query(request.method, resource.canonical)
    if declared is None:
        return None
    unknown = sorted(set(request.query) - declared)
    return unknown[0] if unknown else None
