"""The shape of one route's entry in the OpenAPI route table (gateway/openapi_routes.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.openapi_types import Schema

TENANT, ADMIN, PUBLIC = "tenant", "admin", "public"
Content = dict[str, Schema]  # media type -> schema


def json_body(schema: Schema) -> Content:
    """A JSON response or request body."""
    return {"application/json": schema}


@dataclass(frozen=True)
class Route:
    """What one operation takes and answers."""

    summary: str
    ok: dict[int, Content]  # success status -> body by media type ({} = no body)
    auth: str = TENANT  # TENANT (any key), ADMIN (the admin key) or PUBLIC (no key)
    query: dict[str, Schema] = field(default_factory=dict)
    body: Content | None = None  # the request body by media type
    body_required: bool = True
    errors: tuple[int, ...] = ()  # statuses beyond the automatic ones
    path: dict[str, Schema] = field(default_factory=dict)  # overrides PATH_PARAMETERS
    any_query: bool = False  # takes any query parameter (a web function reads them all)


LIST_LIMIT: Schema = {"type": "integer", "minimum": 1, "maximum": 1000}
