"""Request validation: turns JSON bodies into typed drafts, or a 400 naming the field."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from typing import Any

from gateway.errors import bad_request
from gateway.requests import reject_unknown
from invoker.api import (
    CONCURRENCY_RANGE,
    IMAGE_PROTOCOLS,
    IMAGE_RUNTIME,
    MEMORY_MB_RANGE,
    TIMEOUT_S_RANGE,
)
from invoker.pieces import spans
from invoker.runtime_code import CodeRejected
from invoker.runtimes import DEFAULT_RUNTIME, REGISTRY, RUNTIMES_BY_NAME, Runtime
from invoker.store.base import FunctionDraft

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Any runtime's handler (the OpenAPI document's pattern); each runtime checks its own.
HANDLER = re.compile("|".join(f"(?:{r.rules.handler_pattern.pattern})" for r in REGISTRY))
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The fields of a `PUT /v1/functions/{name}` body; the OpenAPI document is checked against it.
FUNCTION_FIELDS = frozenset(
    {"runtime", "handler", "code", "memory_mb", "timeout_s", "concurrency", "env", "network"}
    | {"params", "secret_params", "web", "web_raw", "web_secret", "sequence", "annotations"}
    | {"image", "image_protocol"}
)
# What a sequence may carry besides `sequence`: it runs no code of its own.
SEQUENCE_FIELDS = frozenset(
    {"sequence", "params", "secret_params", "web", "web_raw", "web_secret", "annotations"}
)
SEQUENCE_RUNTIME = "sequence"  # the runtime, handler-less code kind of a stored sequence
# An image reference as Docker takes it: [registry[:port]/]path[:tag][@sha256:digest], the
# registry told apart by a dot, a port or `localhost`.
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(
    r"^(?:(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::[0-9]+)?/|[A-Za-z0-9-]+:[0-9]+/)?"
    rf"{_IMAGE_PATH}(?:/{_IMAGE_PATH})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
MAX_IMAGE_REF = 255
MAX_PARAMS_BYTES = 64 * 2**10
MAX_ANNOTATIONS_BYTES = 16 * 2**10
MAX_SEQUENCE_STEPS = 50
RESERVED_PARAM_PREFIX = "__ow_"  # what a web call passes in; never a default parameter
CODE_FIELDS = frozenset({"source", "zip"})
TENANT_FIELDS = frozenset({"name"})  # POST /v1/tenants
NODE_FIELDS = frozenset({"flavor"})  # POST /v1/nodes
MAX_UNZIPPED_BYTES = 512 * 2**20
B64_PIECE_CHARS = 2**18  # a multiple of 4 (each piece decodes on its own), ~1 ms of work


def check_function_name(name: str) -> str:
    """A function name: letters, digits, `_.-`, at most 64 characters."""
    if not FUNCTION_NAME.fullmatch(name):
        raise bad_request(
            "name must be 1-64 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
            "name",
        )
    return name


def _int_in(body: dict[str, Any], key: str, default: int, bounds: tuple[int, int]) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{key} must be an integer", key)
    low, high = bounds
    if not low <= value <= high:
        raise bad_request(f"{key} must be between {low} and {high}, got {value}", key)
    return value


def _number_in(body: dict[str, Any], key: str, default: float, bounds: tuple[int, int]) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{key} must be a number", key)
    low, high = bounds
    if not low <= value <= high:
        raise bad_request(f"{key} must be between {low} and {high}, got {value}", key)
    return float(value)


def _env(body: dict[str, Any]) -> dict[str, str]:
    env = body.get("env", {})
    if not isinstance(env, dict):
        raise bad_request("env must be an object of string values", "env")
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key) or key.startswith("NIMBUS_"):
            raise bad_request(f"env name {key!r} is not allowed", f"env.{key}")
        if not isinstance(value, str) or "\0" in value:
            raise bad_request(f"env value of {key} must be a string without NUL", f"env.{key}")
    return dict(env)


def _code(
    body: dict[str, Any], runtime: Runtime, handler: str, max_bytes: int
) -> tuple[str, bytes]:
    code = body.get("code")
    if isinstance(code, dict):
        reject_unknown(code, CODE_FIELDS, prefix="code.")
    if not isinstance(code, dict) or len(code) != 1:
        raise bad_request('code must be {"source": "..."} or {"zip": "<base64>"}', "code")
    if "source" in code:
        source = code["source"]
        if not isinstance(source, str) or not source.strip():
            raise bad_request(
                f"code.source must be non-empty {runtime.rules.language} source", "code.source"
            )
        data = source.encode()
        if len(data) > max_bytes:
            raise bad_request(f"code is over the {max_bytes} byte limit", "code.source")
        _checked(runtime.rules.check_source, source, handler)
        return "source", data
    encoded = code["zip"]
    if not isinstance(encoded, str):
        raise bad_request("code.zip must be a base64 string", "code.zip")
    try:
        data = b64decode_strict(encoded)
    except (binascii.Error, ValueError) as exc:
        raise bad_request("code.zip is not valid base64", "code.zip") from exc
    if len(data) > max_bytes:
        raise bad_request(f"code is over the {max_bytes} byte limit", "code.zip")
    _check_handler_in_zip(data, runtime, handler)
    return "zip", data


def _checked(check: Callable[..., None], *args: Any) -> None:
    """Run one of a runtime's code checks; what it rejects is a 400 naming the field."""
    try:
        check(*args)
    except CodeRejected as exc:
        raise bad_request(exc.message, exc.field) from None


def b64decode_strict(encoded: str) -> bytes:
    """`base64.b64decode(encoded, validate=True)`, a piece at a time.

    Checking and decoding 64 MiB of base64 are single C calls that hold the GIL for ~200 ms
    (a thread alone would not free the event loop); in pieces the loop gets it back between
    them (`invoker.pieces`). Only the last piece may end in padding, as in one call.
    """
    if len(encoded) <= B64_PIECE_CHARS:
        return base64.b64decode(encoded, validate=True)
    out = io.BytesIO()
    for at, until in spans(0, len(encoded), B64_PIECE_CHARS):
        data = base64.b64decode(encoded[at:until], validate=True)
        if until < len(encoded) and len(data) != B64_PIECE_CHARS // 4 * 3:
            raise binascii.Error("padding before the end of the data")
        out.write(data)
    return out.getvalue()  # the buffer itself: no copy of the whole


def _check_handler_in_zip(data: bytes, runtime: Runtime, handler: str) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = frozenset(archive.namelist())
        # testzip inflates every member: refuse a zip bomb before spending the CPU on it.
        unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNZIPPED_BYTES:
            raise bad_request(
                f"code.zip unpacks to {unpacked} bytes, over the {MAX_UNZIPPED_BYTES} limit",
                "code.zip",
            )
        if archive.testzip() is not None:
            raise zipfile.BadZipFile("a member is corrupt")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise bad_request(f"code.zip is not a valid zip archive: {exc}", "code.zip") from exc
    _checked(runtime.rules.check_zip, names, archive.read, handler)


def _json_object(body: dict[str, Any], key: str, max_bytes: int) -> dict[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise bad_request(f"{key} must be a JSON object", key)
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > max_bytes:
        raise bad_request(f"{key} is {size} bytes as JSON, over the {max_bytes} limit", key)
    return value


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be true or false", key)
    return value


def _params(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Default parameters and the keys of those that are secret."""
    params = _json_object(body, "params", MAX_PARAMS_BYTES)
    for key in params:
        if key.startswith(RESERVED_PARAM_PREFIX):
            raise bad_request(f"params may not define {key!r} (a web call sets it)", "params")
    secret = body.get("secret_params", [])
    if not isinstance(secret, list) or not all(isinstance(k, str) for k in secret):
        raise bad_request("secret_params must be a list of keys of params", "secret_params")
    missing = [k for k in secret if k not in params]
    if missing:
        raise bad_request(
            f"secret_params names {missing[0]!r}, not a key of params", "secret_params"
        )
    return params, tuple(dict.fromkeys(secret))


def _web_secret_hash(body: dict[str, Any]) -> str | None:
    """What is kept of the web secret: its hash (the secret itself is never returned)."""
    secret = body.get("web_secret")
    if secret is None:
        return None
    if not isinstance(secret, str) or not 1 <= len(secret) <= 256 or not secret.isprintable():
        raise bad_request("web_secret must be 1-256 printable characters, or null", "web_secret")
    return hashlib.sha256(secret.encode()).hexdigest()


def _sequence(body: dict[str, Any], name: str) -> tuple[str, ...]:
    steps = body["sequence"]
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_SEQUENCE_STEPS:
        raise bad_request(
            f"sequence must be a list of 1 to {MAX_SEQUENCE_STEPS} function names", "sequence"
        )
    for step in steps:
        if not isinstance(step, str) or not FUNCTION_NAME.fullmatch(step):
            raise bad_request(f"sequence names {step!r}, not a function name", "sequence")
        if step == name:
            raise bad_request(f"sequence {name!r} names itself: a cycle", "sequence")
    return tuple(steps)


def _sequence_draft(
    tenant: str, name: str, body: dict[str, Any], common: dict[str, Any]
) -> FunctionDraft:
    extra = sorted(set(body) - SEQUENCE_FIELDS)
    if extra:
        raise bad_request(f"a sequence runs no code of its own: it takes no {extra[0]}", extra[0])
    return FunctionDraft(
        tenant=tenant,
        name=name,
        runtime=SEQUENCE_RUNTIME,
        handler="",
        code_kind=SEQUENCE_RUNTIME,
        code=b"",
        memory_mb=MEMORY_MB_RANGE[0],
        timeout_s=float(TIMEOUT_S_RANGE[1]),
        concurrency=1,
        env={},
        network=False,
        sequence=_sequence(body, name),
        **common,
    )


def _network(body: dict[str, Any]) -> bool:
    network = body.get("network", False)
    if not isinstance(network, bool):
        raise bad_request("network must be true or false", "network")
    return network


def _running(body: dict[str, Any]) -> dict[str, Any]:
    """The fields that size and configure a function's containers, code or image."""
    return {
        "memory_mb": _int_in(body, "memory_mb", 128, MEMORY_MB_RANGE),
        "timeout_s": _number_in(body, "timeout_s", 30, TIMEOUT_S_RANGE),
        "concurrency": _int_in(body, "concurrency", 1, CONCURRENCY_RANGE),
        "env": _env(body),
        "network": _network(body),
    }


def check_image_ref(image: Any) -> str:
    """An image reference such as `repo/name:tag` (pure: whether the engine has it is the
    deploy's next check)."""
    if not isinstance(image, str) or len(image) > MAX_IMAGE_REF or not IMAGE_REF.fullmatch(image):
        raise bad_request(
            "image must be an image reference such as 'myrepo/fn:1.0' "
            f"(at most {MAX_IMAGE_REF} characters)",
            "image",
        )
    return image


def _image_draft(
    tenant: str, name: str, body: dict[str, Any], common: dict[str, Any]
) -> FunctionDraft:
    """A function that runs a local container image of its own instead of code."""
    image = check_image_ref(body["image"])
    if "code" in body:
        raise bad_request("a function has either code or an image, not both", "code")
    if body.get("runtime", IMAGE_RUNTIME) != IMAGE_RUNTIME:
        raise bad_request(
            f"a function with an image takes no runtime (or runtime {IMAGE_RUNTIME!r})",
            "runtime",
        )
    protocol = body.get("image_protocol")
    if protocol is not None and protocol not in IMAGE_PROTOCOLS:
        raise bad_request(
            f"image_protocol must be one of {', '.join(IMAGE_PROTOCOLS)}, or left out to "
            "detect it from the image's io.nimbus.runtime label",
            "image_protocol",
        )
    handler = body.get("handler", "")
    if handler != "" and (not isinstance(handler, str) or not HANDLER.fullmatch(handler)):
        raise bad_request("handler must name the function the image carries", "handler")
    if handler and protocol == "http":
        raise bad_request("an image on the http protocol takes no handler", "handler")
    return FunctionDraft(
        tenant=tenant,
        name=name,
        runtime=IMAGE_RUNTIME,
        handler=handler,
        code_kind=IMAGE_RUNTIME,
        code=b"",
        image=image,
        image_protocol=protocol,
        **_running(body),
        **common,
    )


def _runtime(body: dict[str, Any]) -> Runtime:
    """The registered runtime the body names (the default one when it names none)."""
    name = body.get("runtime", DEFAULT_RUNTIME)
    if not isinstance(name, str):
        raise bad_request(f"runtime must be a string such as {DEFAULT_RUNTIME!r}", "runtime")
    runtime = RUNTIMES_BY_NAME.get(name)
    if runtime is None:
        available = ", ".join(sorted(RUNTIMES_BY_NAME))
        raise bad_request(f"unknown runtime {name!r}; available: {available}", "runtime")
    return runtime


def function_draft(tenant: str, name: str, body: Any, *, max_code_bytes: int) -> FunctionDraft:
    """Validate a `PUT /v1/functions/{name}` body: a function with code, with an image of
    its own, or a sequence.

    Whether a sequence's steps exist (and make no cycle) needs the store, whether the image
    is on the engine (and who it runs as) the engine: the route checks both.
    """
    check_function_name(name)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", "body")
    reject_unknown(body, FUNCTION_FIELDS)
    params, secret_params = _params(body)
    common: dict[str, Any] = {
        "params": params,
        "secret_params": secret_params,
        "web": _bool(body, "web"),
        "web_raw": _bool(body, "web_raw"),
        "web_secret_hash": _web_secret_hash(body),
        "annotations": _json_object(body, "annotations", MAX_ANNOTATIONS_BYTES),
    }
    if "sequence" in body:
        return _sequence_draft(tenant, name, body, common)
    if "image" in body:
        return _image_draft(tenant, name, body, common)
    if "image_protocol" in body:
        raise bad_request("image_protocol needs an image", "image_protocol")
    runtime = _runtime(body)
    handler = body.get("handler", runtime.default_handler)
    if not isinstance(handler, str) or not runtime.rules.handler_pattern.fullmatch(handler):
        raise bad_request(f"handler must look like {runtime.rules.handler_help}", "handler")
    code_kind, code = _code(body, runtime, handler, max_code_bytes)
    draft = FunctionDraft(
        tenant=tenant,
        name=name,
        runtime=runtime.name,
        handler=handler,
        code_kind=code_kind,
        code=code,
        **_running(body),
        **common,
    )
    _ = draft.code_sha256  # hashed here, off the loop (callers run this in a thread)
    return draft


def limit_param(raw: str | None, *, default: int = 50, maximum: int = 1000) -> int:
    """The `limit` query parameter."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request("limit must be an integer", "limit") from None
    if not 1 <= value <= maximum:
        raise bad_request(f"limit must be between 1 and {maximum}", "limit")
    return value
