"""One entry per HTTP route: what it takes and what it answers (gateway/openapi.py builds
the document from this table).

Adding a route? Add its `(METHOD, "/path/{param}")` entry here (`Route` is in
gateway/openapi_model.py; the bucket routes are in gateway/openapi_buckets.py).
tests/unit/test_openapi.py fails while an aiohttp route has no entry or an entry has no
route. Statuses every route can answer are added for you: 400 (bad query parameter or
body), 401 (unless `auth=PUBLIC`), 403 (`auth=ADMIN`), 404 (a path with parameters), 408 (a
JSON body that never arrives). Query parameters not declared in `query` are refused with a
400 naming them.
"""

from __future__ import annotations

from gateway.billing_query import GROUP_BY
from gateway.openapi_buckets import BUCKET_ROUTES
from gateway.openapi_model import (
    ADMIN,
    LIST_LIMIT,
    PUBLIC,
    Route,
    json_body,
)
from gateway.openapi_nodes import NODE_ROUTES
from gateway.openapi_schemas import (
    BUCKET_NAME_SCHEMA,
    EVENT,
    FUNCTION_NAME_SCHEMA,
    FUNCTION_PUT,
    RULE_PUT,
    TENANT_CREATE,
    TENANT_LIMITS_PUT,
    TENANT_NAME_SCHEMA,
    TRIGGER_NAME_SCHEMA,
    TRIGGER_PUT,
)
from gateway.openapi_types import (
    ANY,
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    Schema,
    array,
    nullable,
    obj,
    ref,
)
from gateway.openapi_versions import INVOKE_QUERY, QUALIFIED_NAME_SCHEMA, VERSION_ROUTES

# Path parameters by name, unless a route overrides one.
PATH_PARAMETERS: dict[str, Schema] = {
    "name": FUNCTION_NAME_SCHEMA,
    "id": {"type": "string", "minLength": 1},
    "token": {"type": "string", "minLength": 1},
    "bucket": BUCKET_NAME_SCHEMA,
    "key": {"type": "string", "minLength": 1, "maxLength": 1024},
}

_LIMIT = LIST_LIMIT
_TIME = {"type": "string", "description": "ISO-8601 date or datetime, or epoch seconds"}
_RANGE = {"from": _TIME, "to": _TIME}
_DELETED = json_body(obj({"deleted": STRING}, required=("deleted",)))
_FIRED = json_body(
    obj({"trigger": STRING, "activation_ids": array(STRING)}, required=("activation_ids",))
)
_REPORT = ref("Report")
_LIMITS = obj(
    {
        "tenant": STRING,
        **TENANT_LIMITS_PUT["properties"],
        "effective": {"type": "object"},
        "backlog_used": INTEGER,
        "dropped_trigger_events": INTEGER,
    },
    required=("tenant", "effective"),
)


def _web_route(method: str) -> Route:
    """A web function's public URL, for one method: what it answers is the function's."""
    return Route(
        f"{method} a web function (deployed with web: true), no API key; the function gets "
        "the request (__ow_method, __ow_headers, __ow_path, query and body; __ow_query and "
        "__ow_body in raw mode) and its statusCode, headers and body make the response. "
        "401 without its X-Require-Whisk-Auth secret when it has one",
        ok={200: {"*/*": ANY}, 204: {}},
        auth=PUBLIC,
        body=None if method in ("GET", "OPTIONS") else {"*/*": ANY},
        body_required=False,
        path={"tenant": TENANT_NAME_SCHEMA, "function": FUNCTION_NAME_SCHEMA, "path": STRING},
        errors=(406, 429, 502, 503, 504),
        any_query=True,
    )


ROUTES: dict[tuple[str, str], Route] = {
    # --- service ----------------------------------------------------------------------
    ("GET", "/healthz"): Route(
        "Liveness, and which container driver runs functions",
        ok={200: json_body(obj({"ok": BOOLEAN, "driver": STRING}, required=("ok",)))},
        auth=PUBLIC,
    ),
    ("GET", "/v1/openapi.json"): Route(
        "This document", ok={200: json_body({"type": "object"})}, auth=PUBLIC
    ),
    ("GET", "/metrics"): Route(
        "Prometheus metrics (admin key unless served with --public-metrics)",
        ok={200: {"text/plain": STRING}},
        auth=ADMIN,
    ),
    ("GET", "/v1/runtimes"): Route(
        "The runtimes a function can name, with the versions that run them",
        ok={
            200: json_body(
                obj(
                    {
                        "runtimes": array(
                            obj(
                                {
                                    "name": STRING,
                                    "family": STRING,
                                    "version": nullable(STRING),
                                    "image": nullable(STRING),
                                    "protocol": STRING,
                                    "default": BOOLEAN,
                                    "code_formats": array(
                                        obj({"kind": STRING, "description": STRING})
                                    ),
                                    "handler": STRING,
                                    "default_handler": STRING,
                                    "stem_cells": INTEGER,
                                },
                                required=("name", "version", "code_formats", "default_handler"),
                            )
                        )
                    },
                    required=("runtimes",),
                )
            )
        },
    ),
    # --- tenants ----------------------------------------------------------------------
    ("POST", "/v1/tenants"): Route(
        "Create a tenant; its API key is shown once",
        ok={
            201: json_body(
                obj(
                    {
                        "name": STRING,
                        "api_key": STRING,
                        "openwhisk": obj({"uuid": STRING, "key": STRING, "auth": STRING}),
                    },
                    required=("name", "api_key"),
                )
            )
        },
        auth=ADMIN,
        body=json_body(TENANT_CREATE),
        errors=(409,),
    ),
    ("GET", "/v1/tenants"): Route(
        "Every tenant's name and created time (never a key)",
        ok={
            200: json_body(
                obj(
                    {"tenants": array(obj({"name": STRING, "created": NUMBER}))},
                    required=("tenants",),
                )
            )
        },
        auth=ADMIN,
    ),
    ("DELETE", "/v1/tenants/{name}"): Route(
        "Delete a tenant and everything it owns (usage records stay)",
        ok={204: {}},
        auth=ADMIN,
        path={"name": TENANT_NAME_SCHEMA},
    ),
    ("POST", "/v1/tenants/self/keys"): Route(
        "Another API key for the caller's tenant, shown once",
        ok={201: json_body(obj({"key_id": STRING, "api_key": STRING, "created": NUMBER}))},
        errors=(403, 409),
    ),
    ("POST", "/v1/openwhisk/credentials"): Route(
        "Another OpenWhisk credential (uuid:key, itself an API key) for the caller's tenant,"
        " shown once",
        ok={
            201: json_body(
                obj(
                    {
                        "key_id": STRING,
                        "created": NUMBER,
                        "uuid": STRING,
                        "key": STRING,
                        "auth": STRING,
                    }
                )
            )
        },
        errors=(403, 409),
    ),
    ("GET", "/v1/tenants/self/keys"): Route(
        "The caller's tenant's keys: ids and created times",
        ok={
            200: json_body(
                obj({"keys": array(obj({"key_id": STRING, "created": NUMBER}))}, required=("keys",))
            )
        },
        errors=(403,),
    ),
    ("DELETE", "/v1/tenants/self/keys/{key_id}"): Route(
        "Revoke one of the caller's tenant's keys (never the last)",
        ok={204: {}},
        errors=(403, 409),
        path={"key_id": {"type": "string", "minLength": 1}},
    ),
    ("GET", "/v1/tenants/{name}/limits"): Route(
        "A tenant's limits (the admin, or the tenant itself)",
        ok={200: json_body(_LIMITS)},
        path={"name": TENANT_NAME_SCHEMA},
    ),
    ("PUT", "/v1/tenants/{name}/limits"): Route(
        "Replace a tenant's limits (null = the platform default)",
        ok={200: json_body(_LIMITS)},
        auth=ADMIN,
        body=json_body(TENANT_LIMITS_PUT),
        path={"name": TENANT_NAME_SCHEMA},
    ),
    # --- functions --------------------------------------------------------------------
    ("PUT", "/v1/functions/{name}"): Route(
        "Create (201) or update (200) a function",
        ok={200: json_body(ref("Function")), 201: json_body(ref("Function"))},
        body=json_body(FUNCTION_PUT),
    ),
    ("GET", "/v1/functions"): Route(
        "The caller's functions",
        ok={200: json_body(obj({"functions": array(ref("Function"))}, required=("functions",)))},
    ),
    ("GET", "/v1/functions/{name}"): Route("One function", ok={200: json_body(ref("Function"))}),
    ("DELETE", "/v1/functions/{name}"): Route(
        "Delete a function and its containers", ok={200: _DELETED}
    ),
    ("POST", "/v1/functions/{name}/invoke"): Route(
        "Run the function (the latest, or `name:version`, `name:alias`, ?version=, ?alias=) "
        "on the event; ?async=true queues it (202)",
        ok={
            200: json_body(ANY),
            202: json_body(
                obj(
                    {"activation_id": STRING, "status": STRING, "version": INTEGER},
                    required=("activation_id",),
                )
            ),
        },
        query={"async": {"type": "boolean"}, "blocking": {"type": "boolean"}, **INVOKE_QUERY},
        body=json_body(EVENT),
        body_required=False,
        errors=(429, 502, 503, 504),
        path={"name": QUALIFIED_NAME_SCHEMA},
    ),
    **VERSION_ROUTES,  # gateway/openapi_versions.py
    # --- activations ------------------------------------------------------------------
    ("GET", "/v1/activations"): Route(
        "The caller's newest activations",
        ok={
            200: json_body(
                obj(
                    {
                        "activations": array(ref("Activation")),
                        "next": STRING,
                        "truncated": BOOLEAN,
                    },
                    required=("activations",),
                )
            )
        },
        query={"function": FUNCTION_NAME_SCHEMA, "limit": _LIMIT, "cursor": STRING},
    ),
    ("GET", "/v1/activations/{id}"): Route(
        "One activation", ok={200: json_body(ref("Activation"))}
    ),
    ("DELETE", "/v1/activations/{id}"): Route(
        "Delete one activation (its usage record stays)", ok={204: {}}, errors=(409,)
    ),
    ("DELETE", "/v1/activations"): Route(
        "Delete the caller's activations that started before `before`",
        ok={200: json_body(obj({"deleted": INTEGER}, required=("deleted",)))},
        query={"function": FUNCTION_NAME_SCHEMA, "before": _TIME},
    ),
    # --- billing ----------------------------------------------------------------------
    ("GET", "/v1/billing"): Route(
        "The caller's bill for [from, to)",
        ok={200: {**json_body(_REPORT), "text/csv": STRING}},
        query={
            **_RANGE,
            "group_by": {"type": "string", "enum": list(GROUP_BY)},
            "format": {"type": "string", "enum": ["json", "csv"]},
        },
    ),
    ("GET", "/v1/admin/billing"): Route(
        "Every tenant's bill for [from, to)",
        ok={
            200: json_body(
                obj(
                    {"tenants": {"type": "object", "additionalProperties": _REPORT}},
                    required=("tenants",),
                )
            )
        },
        auth=ADMIN,
        query={**_RANGE, "group_by": {"type": "string", "enum": list(GROUP_BY)}},
    ),
    ("GET", "/v1/admin/economics"): Route(
        "VM-hours, cost, revenue, margin and utilisation for [from, to)",
        ok={200: json_body({"type": "object"})},
        auth=ADMIN,
        query=dict(_RANGE),
    ),
    # --- triggers and rules -----------------------------------------------------------
    ("PUT", "/v1/triggers/{name}"): Route(
        "Create (201) or replace (200) a trigger",
        ok={200: json_body(ref("Trigger")), 201: json_body(ref("Trigger"))},
        body=json_body(TRIGGER_PUT),
        path={"name": TRIGGER_NAME_SCHEMA},
    ),
    ("GET", "/v1/triggers"): Route(
        "The caller's triggers",
        ok={200: json_body(obj({"triggers": array(ref("Trigger"))}, required=("triggers",)))},
    ),
    ("GET", "/v1/triggers/{name}"): Route(
        "One trigger", ok={200: json_body(ref("Trigger"))}, path={"name": TRIGGER_NAME_SCHEMA}
    ),
    ("DELETE", "/v1/triggers/{name}"): Route(
        "Delete a trigger and its rules", ok={200: _DELETED}, path={"name": TRIGGER_NAME_SCHEMA}
    ),
    ("POST", "/v1/triggers/{name}/fire"): Route(
        "Fire a trigger with the body as its event",
        ok={202: _FIRED},
        body=json_body(EVENT),
        body_required=False,
        path={"name": TRIGGER_NAME_SCHEMA},
        errors=(429,),
    ),
    ("POST", "/v1/hooks/{token}"): Route(
        "A trigger's secret webhook (S3/MinIO notifications understood)",
        ok={202: _FIRED},
        auth=PUBLIC,
        body=json_body(EVENT),
        body_required=False,
        errors=(429,),
    ),
    ("PUT", "/v1/rules/{name}"): Route(
        "Create (201) or replace (200) a rule",
        ok={200: json_body(ref("Rule")), 201: json_body(ref("Rule"))},
        body=json_body(RULE_PUT),
        path={"name": TRIGGER_NAME_SCHEMA},
    ),
    ("GET", "/v1/rules"): Route(
        "The caller's rules",
        ok={200: json_body(obj({"rules": array(ref("Rule"))}, required=("rules",)))},
    ),
    ("GET", "/v1/rules/{name}"): Route(
        "One rule", ok={200: json_body(ref("Rule"))}, path={"name": TRIGGER_NAME_SCHEMA}
    ),
    ("DELETE", "/v1/rules/{name}"): Route(
        "Delete a rule", ok={200: _DELETED}, path={"name": TRIGGER_NAME_SCHEMA}
    ),
    **NODE_ROUTES,  # gateway/openapi_nodes.py
    # --- web console (docs/console.md): public files; its data comes from this API ------
    ("GET", "/console"): Route(
        "The web console's page, no API key (the page calls this API with the key the user pastes)",
        ok={200: {"text/html": STRING}, 304: {}},
        auth=PUBLIC,
    ),
    ("GET", "/console/{path:.*}"): Route(
        "The web console's static files (scripts, styles, icons), no API key",
        ok={200: {"*/*": ANY}, 304: {}},
        auth=PUBLIC,
        path={"path": STRING},
    ),
    **BUCKET_ROUTES,  # gateway/openapi_buckets.py
    **{
        (method, path): _web_route(method)
        for path in ("/web/{tenant}/{function}", "/web/{tenant}/{function}/{path:.*}")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    },
}


def declared_query(method: str, route: str) -> frozenset[str] | None:
    """The query parameters a route takes; None for a route without an entry, or one
    that takes any."""
    entry = ROUTES.get(("GET" if method == "HEAD" else method, route))
    return None if entry is None or entry.any_query else frozenset(entry.query)
