"""The building blocks of the OpenAPI document's JSON Schemas (OpenAPI 3.1 spelling)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
ANY: Schema = {}  # any JSON value


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null (OpenAPI 3.1 spelling)."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(
    properties: dict[str, Schema], *, required: tuple[str, ...] = (), closed: bool = False
) -> Schema:
    """An object schema; `closed` (request bodies) refuses fields not listed."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: Schema) -> Schema:
    """An array of `items`."""
    return {"type": "array", "items": items}


def number_range(kind: str, bounds: tuple[int, int]) -> Schema:
    """A number or integer schema within inclusive bounds."""
    return {"type": kind, "minimum": bounds[0], "maximum": bounds[1]}
