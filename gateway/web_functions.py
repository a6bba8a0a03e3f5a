"""Web functions, as OpenWhisk's web actions: an HTTP request in, an HTTP response out.

Pure: plain values in and out, no aiohttp, so the native route (`/web/{tenant}/{function}`)
and the OpenWhisk facade (`/api/v1/web/{ns}/{pkg}/{action}.{ext}`) share every rule.
Shapes follow OpenWhisk's docs/webactions.md and its controller:

- `web_args`: the function's input. `__ow_method` (lower case), `__ow_headers` (lower-case
  names), `__ow_path`; then query parameters and the fields of a JSON object or form body
  (the body wins), or, for any other body, `__ow_body` (base64 for binary content types
  and JSON, text otherwise). In raw mode the query stays a string (`__ow_query`) and the
  body is always `__ow_body`. A request may not set an `__ow_` name (400).
- `web_response`: the function's result as the response. `.http` (OpenWhisk's default):
  `statusCode`, `headers` and `body`, a base64 body decoded for binary content types;
  `.json`, `.html`, `.svg`, `.text` as OpenWhisk renders them, an application error's
  `error` property in place of the result. The native route has no extension: an object
  with any of `statusCode`/`headers`/`body` is read as `.http`, anything else is JSON
  with 200.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EXTENSIONS = (".http", ".json", ".html", ".svg", ".text")
DEFAULT_EXTENSION = ".http"
RESERVED = frozenset(
    {"__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_query", "__ow_body"}
)
# The caller's credentials for Nimbus itself and the web secret stay with the platform.
DROPPED_HEADERS = frozenset({"authorization", "x-require-whisk-auth"})
SECRET_HEADER = "X-Require-Whisk-Auth"
REQUIRE_AUTH = "require-whisk-auth"  # annotation: true asks for the caller's credentials
ERROR_FIELD = "error"  # a result object with it is OpenWhisk's application error
CUSTOM_OPTIONS = "web-custom-options"  # annotation: the function answers OPTIONS itself
# What the response's own framing decides, never a function.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-www-form-urlencoded",
        "image/svg+xml",
    }
)
_HTTP_FIELDS = ("statusCode", "headers", "body")
CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"),
)
CORS_ALLOW_HEADERS = "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"


class WebError(Exception):
    """A web request that cannot be served: the status to answer and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WebLimits:
    """Calls per second one web function takes from the public, and its burst."""

    rate_per_s: float = 50.0
    burst: int = 100


@dataclass(frozen=True)
class WebRequest:
    """An HTTP request as a web function sees it."""

    method: str
    headers: Iterable[tuple[str, str]]
    path: str = ""  # what follows the function in the URL ("" or "/a/b")
    query: str = ""  # the raw query string
    body: bytes = b""


@dataclass(frozen=True)
class WebResponse:
    """What to answer: status, headers (content type apart) and body bytes."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def split_extension(name: str) -> tuple[str, str]:
    """`hello.json` -> (`hello`, `.json`); a name without a known extension is `.http`."""
    for extension in EXTENSIONS:
        if name.endswith(extension) and len(name) > len(extension):
            return name[: -len(extension)], extension
    return name, DEFAULT_EXTENSION


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(media: str) -> bool:
    """application/json and the `+json` family."""
    return media == "application/json" or media.endswith("+json")


def is_binary(media: str) -> bool:
    """Is a body of this media type binary (so base64 in JSON)? Text types are not."""
    if not media:
        return True  # no type: octet-stream
    if media.startswith("text/") or media in _TEXT_TYPES:
        return False
    return not (media.endswith("+json") or media.endswith("+xml"))


def secret_matches(stored_hash: str | None, presented: str | None) -> bool:
    """Does the presented `X-Require-Whisk-Auth` match the function's secret (constant
    time)? True when the function has none."""
    if stored_hash is None:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(hashlib.sha256(presented.encode()).hexdigest(), stored_hash)


def cors_headers(
    annotations: Mapping[str, Any], request_headers: Mapping[str, str]
) -> list[tuple[str, str]] | None:
    """The CORS headers every answer carries, or None when the function handles OPTIONS
    itself (annotation `web-custom-options`)."""
    if annotations.get(CUSTOM_OPTIONS) is True:
        return None
    asked = request_headers.get("access-control-request-headers")
    return [*CORS_HEADERS, ("Access-Control-Allow-Headers", asked or CORS_ALLOW_HEADERS)]


def _headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in DROPPED_HEADERS:
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _opaque(body: bytes, media: str) -> str:
    """A body passed in as `__ow_body`: base64 if binary (or JSON), else its text."""
    if is_binary(media) or media == "application/json":
        return base64.b64encode(body).decode()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode()


def _body_value(body: bytes, media: str) -> Any:
    """A non-raw request's body: a JSON value, form fields, or an opaque string."""
    if is_json_type(media):
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise WebError(400, "the request body is not valid JSON") from None
    if media == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebError(400, "the form body is not UTF-8") from None
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    return _opaque(body, media)


def web_args(request: WebRequest, *, raw: bool, final: Collection[str] = ()) -> dict[str, Any]:
    """The function's input for a web request (its default params go under it).

    `final` names parameters a request may not set (OpenWhisk's `final` annotation).
    """
    headers = _headers(request.headers)
    media = media_type(headers.get("content-type"))
    args: dict[str, Any] = {
        "__ow_method": request.method.lower(),
        "__ow_headers": headers,
        "__ow_path": request.path,
    }
    if raw:
        args["__ow_query"] = request.query
        args["__ow_body"] = _opaque(request.body, media) if request.body else ""
        return args
    fields: dict[str, Any] = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
    if request.body:
        value = _body_value(request.body, media)
        if isinstance(value, dict):
            fields.update(value)
        else:
            args["__ow_body"] = value
    refused = sorted(set(fields) & (RESERVED | set(final)))
    if refused:
        raise WebError(400, f"the request may not set the parameter {refused[0]!r}")
    return {**fields, **args}


# --- result -> response -------------------------------------------------------------------


def _invalid(media: str) -> WebError:
    return WebError(400, f"the function's result is not a valid {media} response")


def _header_values(name: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, list):
        return [pair for inner in value for pair in _header_values(name, inner)]
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise WebError(400, f"the function's header {name!r} is not a string")
    if "\r" in text or "\n" in text or "\r" in name or "\n" in name or not name:
        raise WebError(400, f"the function's header {name!r} holds a line break")
    return [(name, text)]


def _status(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise WebError(400, "the function's statusCode is not an HTTP status")
    return value


def _decoded(text: str, media: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WebError(400, f"the function's {media} body is not valid base64") from None


def _looks_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _http(result: Any) -> WebResponse:
    """`.http`: statusCode, headers and body, as OpenWhisk's controller reads them."""
    if not isinstance(result, dict):
        raise _invalid("message/http")
    raw_headers = result.get("headers", {})
    if not isinstance(raw_headers, dict):
        raise WebError(400, "the function's headers are not an object")
    pairs = [p for name, v in raw_headers.items() for p in _header_values(str(name), v)]
    declared = next((v for n, v in pairs if n.lower() == "content-type"), None)
    headers = [(n, v) for n, v in pairs if n.lower() not in _FRAMING_HEADERS | {"content-type"}]
    status = _status(result.get("statusCode"))
    body = result.get("body")
    if body is None or body == "":
        return WebResponse(204 if status is None else status, headers=headers)
    if not isinstance(body, str):  # a JSON value: only with a JSON content type
        media = media_type(declared) or "application/json"
        if not is_json_type(media):
            raise WebError(400, "a JSON body needs a JSON content type")
        data = json.dumps(body).encode()
        return WebResponse(status or 200, data, declared or "application/json", headers)
    media = media_type(declared) or "text/html"
    content_type = declared or "text/html; charset=utf-8"
    if is_json_type(media) and _looks_base64(body):
        data = base64.b64decode(body)
    elif is_binary(media):
        data = _decoded(body, media)
    else:
        data = body.encode("utf-8")
    return WebResponse(status or 200, data, content_type, headers)


def _field(result: Any, *names: str) -> Any:
    if not isinstance(result, dict):
        return result
    for name in names:
        if name in result:
            return result[name]
    return None


def _text(result: Any) -> WebResponse:
    if isinstance(result, dict) and "body" not in result and "text" not in result:
        raise WebError(404, "the result has no 'body' or 'text' property")
    value = _field(result, "body", "text")
    if isinstance(value, dict | list):
        text = json.dumps(value, indent=2)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value)  # true, 3, null as JSON spells them
    return WebResponse(200, text.encode(), "text/plain; charset=utf-8")


def web_response(result: Any, extension: str | None = None) -> WebResponse:
    """A successful result as the HTTP response; `extension` as OpenWhisk's (None: the
    native route). Raises WebError for a result the extension cannot render.

    With an extension, an application error (a result object with an `error` property,
    OpenWhisk's `application error`) answers its `error` value rendered by the extension,
    as OpenWhisk's controller projects it: `{"error": {"statusCode": 400, ...}}` under
    `.http` is a 400.
    """
    if extension is None:
        if isinstance(result, dict) and any(key in result for key in _HTTP_FIELDS):
            return _http(result)
        return WebResponse(200, json.dumps(result).encode(), "application/json")
    if isinstance(result, dict) and ERROR_FIELD in result:
        result = result[ERROR_FIELD]
    if extension == ".http":
        return _http(result)
    if extension == ".json":
        if not isinstance(result, dict | list):
            raise _invalid("application/json")
        return WebResponse(200, json.dumps(result).encode(), "application/json")
    if extension in (".html", ".svg"):
        kind = extension[1:]
        value = _field(result, "body", kind)
        media = "text/html" if kind == "html" else "image/svg+xml"
        if not isinstance(value, str):
            raise _invalid(media)
        charset = "; charset=utf-8" if kind == "html" else ""
        return WebResponse(200, value.encode(), media + charset)
    if extension == ".text":
        return _text(result)
    raise WebError(406, f"extension {extension!r} is not one of {', '.join(EXTENSIONS)}")
