"""The OpenAPI document: one entry per aiohttp route, a valid 3.1 document, and request
schemas that agree with the validators the handlers use."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from jsonschema import Draft202012Validator

from gateway.app import create_app
from gateway.config import Config
from gateway.errors import ApiError
from gateway.openapi import document, error_statuses, openapi_path
from gateway.openapi_routes import ROUTES, declared_query
from gateway.openapi_schemas import (
    FUNCTION_PUT,
    NODE_CREATE,
    RULE_PUT,
    TENANT_CREATE,
    TENANT_LIMITS_PUT,
    TRIGGER_PUT,
    VALIDATED_FIELDS,
)
from gateway.schemas import function_draft
from gateway.triggers import TYPES, rule_fields, trigger_config


def served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every route the gateway serves; HEAD rides along with GET."""
    app = create_app(Config(data_dir=tmp_path, driver="process"))
    found = set()
    for resource in app.router.resources():
        for route in resource:
            if route.method == "HEAD" or resource.canonical.startswith("/api/"):
                continue
            found.add((route.method, openapi_path(resource.canonical)))
    return found


def documented_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in the document."""
    return {
        (method.upper(), path)
        for path, operations in document()["paths"].items()
        for method in operations
    }


def test_every_route_has_a_spec_entry_and_every_entry_a_route(tmp_path: Path) -> None:
    served, documented = served_routes(tmp_path), documented_routes()
    assert served - documented == set(), "routes without an entry in gateway/openapi_routes.py"
    assert documented - served == set(), "entries in gateway/openapi_routes.py without a route"


def test_the_comparison_sees_a_missing_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The consistency test cannot pass vacuously: drop one entry and the sets differ.
    trimmed = {k: v for k, v in ROUTES.items() if k != ("GET", "/v1/functions")}
    monkeypatch.setattr("gateway.openapi.ROUTES", trimmed)
    document.cache_clear()
    try:
        assert ("GET", "/v1/functions") in served_routes(tmp_path) - documented_routes()
    finally:
        document.cache_clear()


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()
    for component in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(component)
    operations = [op for ops in doc["paths"].values() for op in ops.values()]
    assert len({op["operationId"] for op in operations}) == len(operations)


def test_every_operation_documents_its_errors_in_the_error_shape() -> None:
    error = {"$ref": "#/components/schemas/Error"}
    for (method, path), route in ROUTES.items():
        op = document()["paths"][openapi_path(path)][method.lower()]
        for status in error_statuses(path, route):
            media = op["responses"][str(status)]["content"]["application/json"]
            assert media["schema"] == error, (method, path, status)
        public = route.auth == "public"
        assert ("401" in op["responses"]) is not public, (method, path)
        assert (op.get("security") == []) is public, (method, path)


def test_the_openapi_document_is_public() -> None:
    from gateway.middleware import PUBLIC_PATHS

    assert "/v1/openapi.json" in PUBLIC_PATHS
    assert ROUTES[("GET", "/v1/openapi.json")].auth == "public"


def test_head_uses_the_get_entry_and_unlisted_routes_are_unchecked() -> None:
    assert declared_query("HEAD", "/v1/activations") == {"function", "limit", "cursor"}
    assert declared_query("POST", "/v1/functions/{name}/invoke") == {
        "async",
        "blocking",
        "version",
        "alias",
    }
    assert declared_query("GET", "/v1/not-yet-documented") is None


# --- request schemas vs the validators ---------------------------------------------------


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema)


def _zip(files: dict[str, str]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


def _field_of(exc: pytest.ExceptionInfo[ApiError]) -> str | None:
    return exc.value.field


def test_request_schemas_list_exactly_the_fields_the_validators_take() -> None:
    code_variants = FUNCTION_PUT["properties"]["code"]["oneOf"]
    listed = {
        "FunctionPut": set(FUNCTION_PUT["properties"]),
        "FunctionPut.code": {f for v in code_variants for f in v["properties"]},
        "TenantCreate": set(TENANT_CREATE["properties"]),
        "NodeCreate": set(NODE_CREATE["properties"]),
        "TenantLimitsPut": set(TENANT_LIMITS_PUT["properties"]),
        "RulePut": set(RULE_PUT["properties"]),
        **{
            f"TriggerPut.{v['properties']['type']['const']}": set(v["properties"])
            for v in TRIGGER_PUT["oneOf"]
        },
    }
    assert {k: set(v) for k, v in VALIDATED_FIELDS.items()} == listed


FUNCTION_BODIES = [
    *FUNCTION_PUT["examples"],
    {
        "runtime": "python:3.11",
        "handler": "app.main.run",
        "code": {"zip": _zip({"app/main.py": "def run(e):\n    return e\n"})},
        "memory_mb": 256,
        "timeout_s": 2.5,
        "concurrency": 4,
        "env": {"GREETING": "hi"},
        "network": False,
    },
]


@pytest.mark.parametrize("body", FUNCTION_BODIES)
def test_function_bodies_the_schema_accepts_the_validator_accepts(body: dict[str, Any]) -> None:
    assert _validator(FUNCTION_PUT).is_valid(body)
    draft = function_draft("t", "f", body, max_code_bytes=2**20)
    assert draft.handler == body["handler"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"admin": True}, "admin"),
        ({"runtime": []}, "runtime"),
        ({"runtime": {}}, "runtime"),
        ({"memory_mb": 1.5}, "memory_mb"),
        ({"network": "yes"}, "network"),
        ({"env": {"A": 1}}, "env.A"),
        ({"env": {"NIMBUS_X": "1"}}, "env.NIMBUS_X"),
        ({"code": {"source": "def handler(e): pass", "extra": 1}}, "code.extra"),
    ],
)
def test_function_bodies_the_schema_refuses_the_validator_refuses(
    change: dict[str, Any], field: str
) -> None:
    body = {**FUNCTION_PUT["examples"][0], **change}
    assert not _validator(FUNCTION_PUT).is_valid(body)
    with pytest.raises(ApiError) as exc:
        function_draft("t", "f", body, max_code_bytes=2**20)
    assert exc.value.status == 400 and _field_of(exc) == field


def test_names_and_handlers_are_matched_whole() -> None:
    # `$` also matches before a trailing newline in Python: the validators use fullmatch.
    # (The document's patterns are ECMA-262, where `$` is the end of the input.)
    body = {**FUNCTION_PUT["examples"][0], "handler": "main.handler\n"}
    with pytest.raises(ApiError) as exc:
        function_draft("t", "f", body, max_code_bytes=2**20)
    assert _field_of(exc) == "handler"
    with pytest.raises(ApiError) as exc:
        function_draft("t", "f\n", FUNCTION_PUT["examples"][0], max_code_bytes=2**20)
    assert _field_of(exc) == "name"
    with pytest.raises(ApiError) as exc:
        rule_fields({"trigger": "t\n", "function": "f"})
    assert _field_of(exc) == "trigger"


def test_trigger_and_rule_schemas_agree_with_their_validators() -> None:
    for body in TRIGGER_PUT["examples"]:
        assert _validator(TRIGGER_PUT).is_valid(body)
        trigger_config(body)
    for kind in TYPES:
        body = {"type": kind, "nonsense": 1}
        assert not _validator(TRIGGER_PUT).is_valid(body)
        with pytest.raises(ApiError) as exc:
            trigger_config(body)
        assert _field_of(exc) == "nonsense"
    rule = {"trigger": "t", "function": "f", "enabled": False}
    assert _validator(RULE_PUT).is_valid(rule) and rule_fields(rule) == ("t", "f", False)
    assert not _validator(RULE_PUT).is_valid({**rule, "x": 1})
    with pytest.raises(ApiError) as exc:
        rule_fields({**rule, "x": 1})
    assert _field_of(exc) == "x"
