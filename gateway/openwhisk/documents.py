"""PURE: OpenWhisk's entity documents (actions, triggers, rules) from Nimbus's.

OpenWhisk writes parameters and annotations as lists of `{"key", "value"}`; Nimbus keeps
objects. An action's document is built from the native function JSON (`to_json`), so
fields the native API grows (`params`, `annotations`, `web`, `sequence`, ...) show here
as soon as it has them, whatever the spec's attribute names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import ApiError
from gateway.openwhisk.records import DEFAULT_LOGS_MB, epoch_ms, semver

RUNTIME_KIND = "python:3.11"
SEQUENCE = "sequence"
SHIM_MODULES = ("main", "nimbus_ow_main")  # handlers the facade writes: `main` is the name


def key_values(mapping: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """An object as OpenWhisk's list of `{"key", "value"}`."""
    return [{"key": k, "value": v} for k, v in (mapping or {}).items()]


def from_key_values(value: Any, field: str) -> dict[str, Any]:
    """OpenWhisk's list of `{"key", "value"}` as an object; 400 naming `field` if malformed."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ApiError(400, f"{field} must be a list of {{key, value}} objects")
    out: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ApiError(400, f"{field} must be a list of {{key, value}} objects")
        out[item["key"]] = item.get("value")
    return out


def entity_name(value: Any, namespace_ok: Any, field: str) -> str:
    """A trigger's or action's name from a rule body: `name` or `/namespace/name`.

    `namespace_ok(ns)` raises for a namespace that is not the caller's. Packages
    (`/ns/pkg/name`) do not exist here: 400.
    """
    if not isinstance(value, str) or not value.strip("/"):
        raise ApiError(400, f"rule requires a valid {field}")
    parts = value.strip("/").split("/")
    if value.startswith("/"):
        namespace_ok(parts[0])
        parts = parts[1:]
    if len(parts) != 1 or not parts[0]:
        raise ApiError(400, f"{field} {value[:200]!r}: packages are not supported")
    return parts[0]


def _main_of(handler: str) -> str:
    module, _, func = handler.rpartition(".")
    return func if module in SHIM_MODULES else handler


def action_kind(native: Mapping[str, Any]) -> str:
    """The kind the action was made with (its `exec` annotation), else its runtime's."""
    annotations = native.get("annotations") or {}
    if native.get("sequence"):
        return SEQUENCE
    kind = annotations.get("exec") if isinstance(annotations, dict) else None
    return kind if isinstance(kind, str) else str(native.get("runtime", RUNTIME_KIND))


def action_annotations(native: Mapping[str, Any]) -> dict[str, Any]:
    """The stored annotations, with what the native fields imply and OpenWhisk shows."""
    found = dict(native.get("annotations") or {})
    if native.get("web") and "web-export" not in found:
        found["web-export"] = True
    if native.get("web_raw") and "raw-http" not in found:
        found["raw-http"] = True
    found.setdefault("exec", action_kind(native))
    return found


def action_limits(native: Mapping[str, Any]) -> dict[str, Any]:
    """`limits` in OpenWhisk's units (ms, MB)."""
    return {
        "timeout": round(float(native.get("timeout_s", 0)) * 1000),
        "memory": int(native.get("memory_mb", 0)),
        "concurrency": int(native.get("concurrency", 1)),
        "logs": DEFAULT_LOGS_MB,
    }


def action_exec(native: Mapping[str, Any], tenant: str, code: str | None) -> dict[str, Any]:
    """`exec`: kind, main, binary and (when asked for) code; or a sequence's components."""
    sequence = native.get("sequence")
    if sequence:
        return {"kind": SEQUENCE, "components": [f"/{tenant}/{name}" for name in sequence]}
    found: dict[str, Any] = {
        "kind": action_kind(native),
        "binary": native.get("code_kind") == "zip",
        "main": _main_of(str(native.get("handler", "main.main"))),
    }
    if native.get("image"):  # a blackbox action
        found["image"] = native["image"]
    if code is not None:
        found["code"] = code
    return found


def _entity(tenant: str, name: str, version: str) -> dict[str, Any]:
    """What every entity document opens with (nothing here is ever published)."""
    return {"namespace": tenant, "name": name, "version": version, "publish": False}


def _status(active: bool) -> str:
    return "active" if active else "inactive"


def action_document(
    native: Mapping[str, Any], tenant: str, code: str | None = None, *, brief: bool = False
) -> dict[str, Any]:
    """An action as OpenWhisk shows it (`brief`: as its listings do, without parameters)."""
    doc: dict[str, Any] = {
        **_entity(tenant, native["name"], semver(int(native["version"]))),
        "exec": action_exec(native, tenant, None if brief else code),
        "annotations": key_values(action_annotations(native)),
        "limits": action_limits(native),
        "updated": epoch_ms(native.get("updated")),
    }
    if brief:
        doc["exec"] = {"binary": doc["exec"].get("binary", False)}
    else:
        doc["parameters"] = key_values(native.get("params"))
    return doc


def trigger_document(
    tenant: str,
    name: str,
    config: Mapping[str, Any],
    rules: Mapping[str, tuple[str, bool]],
    updated: float,
) -> dict[str, Any]:
    """A trigger as OpenWhisk shows it; `rules` maps rule names to (action, active)."""
    return {
        **_entity(tenant, name, "0.0.1"),
        "parameters": key_values(config.get("parameters")),
        "annotations": key_values(config.get("annotations")),
        "limits": {},
        "rules": {
            f"{tenant}/{rule}": {
                "action": {"name": action, "path": tenant},
                "status": _status(active),
            }
            for rule, (action, active) in rules.items()
        },
        "updated": epoch_ms(updated),
    }


def rule_document(
    tenant: str, name: str, trigger: str, action: str, active: bool, updated: float
) -> dict[str, Any]:
    """A rule as OpenWhisk shows it."""
    return {
        **_entity(tenant, name, "0.0.1"),
        "status": _status(active),
        "trigger": {"name": trigger, "path": tenant},
        "action": {"name": action, "path": tenant},
        "annotations": [],
        "updated": epoch_ms(updated),
    }
