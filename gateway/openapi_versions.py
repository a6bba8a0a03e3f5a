"""The version and alias routes' entries in the OpenAPI route table (docs/api.md,
"Versions and aliases"), and the schemas of what they take and answer."""

from __future__ import annotations

from gateway.openapi_model import Route, json_body
from gateway.openapi_types import INTEGER, NUMBER, STRING, Schema, array, nullable, obj, ref
from gateway.schemas import FUNCTION_NAME
from invoker.versions import MAX_SPLIT_VERSIONS, REQUEST_ID_HEADER

ALIAS_NAME_SCHEMA: Schema = {
    "type": "string",
    "pattern": "^(?![0-9]+$)[A-Za-z0-9_-]{1,64}$",
    "description": "not all digits (that is a version), and not `latest`",
}
VERSION_NUMBER_SCHEMA: Schema = {"type": "integer", "minimum": 1}
QUALIFIED_NAME_SCHEMA: Schema = {
    "type": "string",
    "pattern": FUNCTION_NAME.pattern.rstrip("$") + "(:[A-Za-z0-9_-]{1,64})?$",
    "description": "a function name, or `name:version`, `name:alias` or `name:latest`",
}
INVOKE_QUERY: dict[str, Schema] = {
    "version": {**VERSION_NUMBER_SCHEMA, "description": "run this version"},
    "alias": {**ALIAS_NAME_SCHEMA, "description": "run the version this alias picks"},
}
"""The invoke route's query parameters naming a version or an alias."""

_WEIGHTS: Schema = {
    "type": "object",
    "description": "version (as a string) -> weight; weights above 0 and summing to 1",
    "additionalProperties": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "minProperties": 1,
    "maxProperties": MAX_SPLIT_VERSIONS,
}
ALIAS_PUT: Schema = {
    "oneOf": [
        obj({"version": VERSION_NUMBER_SCHEMA}, required=("version",), closed=True),
        obj({"versions": _WEIGHTS}, required=("versions",), closed=True),
    ],
    "examples": [{"version": 3}, {"versions": {"3": 0.9, "4": 0.1}}],
}
ALIAS: Schema = obj(
    {
        "name": STRING,
        "function": STRING,
        "version": nullable(INTEGER),
        "versions": {"type": "object", "additionalProperties": NUMBER},
        "created": NUMBER,
        "updated": NUMBER,
    },
    required=("name", "function", "versions"),
)
VERSION: Schema = {
    "allOf": [ref("Function"), obj({"aliases": array(STRING)}, required=("aliases",))],
    "description": "the function as that deploy left it; `created` is that deploy's time",
}

_PATH = {"alias": ALIAS_NAME_SCHEMA}
_ALIAS_BODY = json_body(ALIAS)

VERSION_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/v1/functions/{name}/versions"): Route(
        "A function's versions, newest first (the newest is the latest)",
        ok={
            200: json_body(
                obj(
                    {"latest": INTEGER, "versions": array(VERSION)},
                    required=("latest", "versions"),
                )
            )
        },
    ),
    ("GET", "/v1/functions/{name}/versions/{version}"): Route(
        "One version of a function",
        ok={200: json_body(VERSION)},
        path={"version": VERSION_NUMBER_SCHEMA},
    ),
    ("GET", "/v1/functions/{name}/code"): Route(
        "The code a version runs, as deployed: a source file (text/plain) or a zip;"
        " 404 for a sequence or an image function",
        ok={
            200: {
                "application/zip": {"type": "string", "format": "binary"},
                "text/plain": {"type": "string"},
            }
        },
        query={"version": {**VERSION_NUMBER_SCHEMA, "description": "this version's code"}},
    ),
    ("PUT", "/v1/functions/{name}/aliases/{alias}"): Route(
        "Create (201) or move (200) an alias: one version, or a weighted split of up to "
        f"{MAX_SPLIT_VERSIONS}; calls through it with a `{REQUEST_ID_HEADER}` stick to one",
        ok={200: _ALIAS_BODY, 201: _ALIAS_BODY},
        body=json_body(ALIAS_PUT),
        path=_PATH,
    ),
    ("GET", "/v1/functions/{name}/aliases"): Route(
        "A function's aliases",
        ok={200: json_body(obj({"aliases": array(ALIAS)}, required=("aliases",)))},
    ),
    ("GET", "/v1/functions/{name}/aliases/{alias}"): Route(
        "One alias", ok={200: _ALIAS_BODY}, path=_PATH
    ),
    ("DELETE", "/v1/functions/{name}/aliases/{alias}"): Route(
        "Delete an alias (its versions stay)",
        ok={200: json_body(obj({"deleted": STRING}, required=("deleted",)))},
        path=_PATH,
    ),
}
