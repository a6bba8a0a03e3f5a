"""PURE: an OpenWhisk action PUT as the body of a native `PUT /v1/functions/{name}`.

The native validator (`gateway.schemas.function_draft`) then checks it like any deploy,
so both APIs store the same functions. OpenWhisk merges a PUT with the existing action
(`overwrite=true` without `exec` keeps the code; without `limits`, `parameters` or
`annotations` keeps those); the native PUT replaces, so the merge happens here, from the
existing function's native JSON and code. Native fields OpenWhisk has no word for (`env`,
`network`) are carried over.

Kinds: `python:3`, `python:3.11` and `python:default` are Nimbus's Python runtime;
`sequence` is a sequence; `blackbox` with `exec.image` is a function running that image
of the local engine (its code baked in: `exec.code` is refused; docs/runtimes.md).
Code is a Python source whose `main` (default `main`) is the entry point, or (`binary`)
a base64 zip with `__main__.py` at its root, as OpenWhisk's Python runtime takes it.
`__main__` is the name of the runtime's own module, so the zip gets a copy of
`__main__.py` as `nimbus_ow_main.py`, the module the handler names.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import ApiError
from gateway.openwhisk.documents import SEQUENCE, entity_name, from_key_values
from invoker.api import CONCURRENCY_RANGE, MEMORY_MB_RANGE, RUNTIMES, TIMEOUT_S_RANGE

KINDS = {
    "python:3": "python:3.11",
    "python:3.11": "python:3.11",
    "python:default": "python:3.11",
    "nodejs:18": "nodejs:18",
    "nodejs:default": "nodejs:18",
}
BLACKBOX = "blackbox"
SUPPORTED_KINDS = (*sorted(KINDS), BLACKBOX, SEQUENCE)
DEFAULT_TIMEOUT_MS = 60_000
DEFAULT_MEMORY_MB = 256
MAX_LOGS_MB = 10
ZIP_ENTRY = "__main__.py"
SHIM_MODULE = "nimbus_ow_main"
_MAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ZIP_MAGIC = b"PK\x03\x04"
# Native fields set from annotations: (annotation, native field).
_WEB_FLAGS = (("web-export", "web"), ("raw-http", "web_raw"))


@dataclass(frozen=True)
class Existing:
    """The function a PUT overwrites: its native JSON, its code as stored, and what the
    JSON shows only redacted (secret parameters' values, whether a web secret is set)."""

    native: Mapping[str, Any]
    code: bytes
    params: Mapping[str, Any]
    secret_params: tuple[str, ...] = ()
    web_secret: bool = False


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _int_limit(limits: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int]) -> int:
    value = limits.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"limits.{key} must be an integer")
    low, high = bounds
    if not low <= value <= high:
        raise ApiError(400, f"limits.{key} must be between {low} and {high}, got {value}")
    return value


def _limits(doc: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """`limits` (ms, MB) merged over the existing function's, as native fields (s, MB)."""
    limits = doc.get("limits") or {}
    if not isinstance(limits, dict):
        raise ApiError(400, "limits must be an object")
    timeout_ms = round(float(old["timeout_s"]) * 1000) if old else DEFAULT_TIMEOUT_MS
    memory = int(old["memory_mb"]) if old else DEFAULT_MEMORY_MB
    concurrency = int(old["concurrency"]) if old else 1
    _int_limit(limits, "logs", MAX_LOGS_MB, (0, MAX_LOGS_MB))  # checked, not enforced
    low_s, high_s = TIMEOUT_S_RANGE
    timeout = _int_limit(limits, "timeout", timeout_ms, (low_s * 1000, high_s * 1000))
    return {
        "timeout_s": timeout / 1000,
        "memory_mb": _int_limit(limits, "memory", memory, MEMORY_MB_RANGE),
        "concurrency": _int_limit(limits, "concurrency", concurrency, CONCURRENCY_RANGE),
    }


def _web_secret(value: Any) -> str | None:
    """`require-whisk-auth` as the native secret: a string or number is the secret; a
    boolean (OpenWhisk's "the caller's own credentials") is kept as an annotation only."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def _decode_zip(code: str) -> bytes | None:
    """The zip a base64 string holds; None if it is not one."""
    try:
        data = base64.b64decode(code, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(_ZIP_MAGIC) else None


def _with_shim(data: bytes) -> bytes:
    """The zip with `__main__.py` copied to the module the handler names."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if ZIP_ENTRY not in archive.namelist():
                raise ApiError(400, f"a zip action needs {ZIP_ENTRY} at its root")
            if f"{SHIM_MODULE}.py" in archive.namelist():
                return data  # already shimmed: a zip read back from this API
            entry = archive.read(ZIP_ENTRY)
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
                for info in archive.infolist():
                    copy.writestr(info, archive.read(info))
                copy.writestr(f"{SHIM_MODULE}.py", entry)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise ApiError(400, f"exec.code is not a valid zip archive: {exc}") from None
    return out.getvalue()


def _code_exec(exec_: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A code action's native runtime, handler and code."""
    code = exec_.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ApiError(400, "exec.code must be the action's code")
    main = exec_.get("main") or "main"
    if not isinstance(main, str) or not _MAIN.fullmatch(main):
        raise ApiError(400, "exec.main must name a function")
    binary = exec_.get("binary")
    data = _decode_zip(code) if binary is not False else None
    if binary is True and data is None:
        raise ApiError(400, "exec.code must be a base64 zip when exec.binary is true")
    native: dict[str, Any] = {"runtime": KINDS[kind]}
    if KINDS[kind].startswith("nodejs:"):  # code as OpenWhisk's Node runtime takes it: no shim
        zipped = base64.b64encode(data).decode() if data is not None else None
        native.update(handler=main, code={"zip": zipped} if zipped else {"source": code})
    elif data is None:
        native.update(handler=f"main.{main}", code={"source": code})
    else:
        shimmed = base64.b64encode(_with_shim(data)).decode()
        native.update(handler=f"{SHIM_MODULE}.{main}", code={"zip": shimmed})
    return native


def _blackbox_exec(exec_: Mapping[str, Any]) -> dict[str, Any]:
    """A blackbox action: its image (checked like the native `image`, then on the engine)."""
    image = exec_.get("image")
    if not isinstance(image, str) or not image:
        raise ApiError(400, "a blackbox action needs exec.image, an image of the local engine")
    if exec_.get("code"):
        raise ApiError(400, "blackbox actions with exec.code are not supported: bake it in")
    return {"image": image}


def _kept_exec(old: Existing) -> dict[str, Any]:
    """The existing function's code and runtime, for a PUT without `exec`."""
    native = old.native
    if native.get("sequence"):
        return {"sequence": list(native["sequence"])}
    if native.get("image"):
        return {"image": native["image"], "image_protocol": native.get("image_protocol")}
    code_kind = str(native.get("code_kind", "source"))
    if code_kind == "zip":
        code: dict[str, str] = {"zip": base64.b64encode(old.code).decode()}
    else:
        code = {"source": old.code.decode("utf-8")}
    return {"runtime": native["runtime"], "handler": native["handler"], "code": code}


def exec_fields(
    doc: Mapping[str, Any], old: Existing | None, namespace_ok: Callable[[str], object]
) -> tuple[dict[str, Any], str | None]:
    """The native code fields of a PUT, and the kind it named (None: kept)."""
    exec_ = doc.get("exec")
    if exec_ is None:
        if old is None:
            raise ApiError(400, "exec undefined: a new action needs exec")
        return _kept_exec(old), None
    if not isinstance(exec_, dict):
        raise ApiError(400, "exec must be an object")
    kind = exec_.get("kind")
    if kind == SEQUENCE:
        components = exec_.get("components")
        if not isinstance(components, list) or not components:
            raise ApiError(400, "a sequence needs exec.components, a list of action names")
        names = [entity_name(c, namespace_ok, "component") for c in components]
        return {"sequence": names}, SEQUENCE
    if kind == BLACKBOX:
        return _blackbox_exec(exec_), BLACKBOX
    if not isinstance(kind, str) or kind not in KINDS:
        raise ApiError(
            400,
            f"kind {str(kind)[:64]!r} is not supported; supported kinds: "
            f"{', '.join(SUPPORTED_KINDS)}",
        )
    assert KINDS[kind] in RUNTIMES
    return _code_exec(exec_, kind), kind


def native_body(
    doc: Any,
    old: Existing | None,
    supported: frozenset[str],
    namespace_ok: Callable[[str], object],
) -> dict[str, Any]:
    """The native deploy body of an OpenWhisk action PUT, merged over `old`.

    `supported` is the native API's set of function fields: a field OpenWhisk sets that
    the native API does not know yet is a 400 naming it, rather than silently lost
    (annotations alone are dropped: they only describe).
    """
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object")
    prior = old.native if old is not None else None
    body, kind = exec_fields(doc, old, namespace_ok)
    if "sequence" not in body:
        body.update(_limits(doc, prior))
        if prior is not None:
            body["env"] = dict(prior.get("env") or {})
            body["network"] = bool(prior.get("network", False))
    if "parameters" in doc:
        params = from_key_values(doc["parameters"], "parameters")
    else:
        params = dict(old.params) if old is not None else {}
    if "annotations" in doc:
        annotations = from_key_values(doc["annotations"], "annotations")
    else:
        annotations = dict((prior or {}).get("annotations") or {})
    if kind is not None:
        annotations["exec"] = kind
    optional: dict[str, Any] = {
        "params": params,
        # Secret marks stay on the keys that are still there: values never leak by update.
        "secret_params": [k for k in (old.secret_params if old else ()) if k in params],
        "annotations": annotations,
        "web_secret": _kept_web_secret(annotations, old),
    }
    for annotation, field in _WEB_FLAGS:
        optional[field] = _truthy(annotations.get(annotation))
    for field, value in optional.items():
        if field in supported:
            body[field] = value
        elif value and field != "annotations":
            raise ApiError(400, f"this server does not support '{field}' on functions yet")
    if "sequence" in body and "sequence" not in supported:
        raise ApiError(400, "this server does not support sequences yet")
    return body


def _kept_web_secret(annotations: Mapping[str, Any], old: Existing | None) -> str | None:
    """The web secret `require-whisk-auth` sets. One set natively is stored only hashed:
    an update that does not restate it is refused rather than left open to everyone."""
    secret = _web_secret(annotations.get("require-whisk-auth"))
    if secret is None and old is not None and old.web_secret:
        if annotations.get("require-whisk-auth") is not False:
            raise ApiError(
                400,
                "this action has a web secret set with the native API; restate it as the "
                "require-whisk-auth annotation (false removes it)",
            )
    return secret
