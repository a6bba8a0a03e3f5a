"""API errors: one exception type, one JSON shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error the caller should see: status code, message and (for bad input) the field."""

    def __init__(
        self, status: int, message: str, *, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra
        self.headers: dict[str, str] = {}

    def with_headers(self, headers: dict[str, str]) -> ApiError:
        """The same error, sent with these response headers."""
        self.headers.update(headers)
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "field"?, ...}}``."""
        error: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            error["field"] = self.field
        error.update(self.extra)
        return {"error": error}

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        """The error as an aiohttp response."""
        return web.json_response(
            self.body(), status=self.status, headers={**self.headers, **(headers or {})}
        )


def bad_request(message: str, field: str) -> ApiError:
    """400 for input that fails validation; `field` names what to fix."""
    return ApiError(400, message, field=field)


def not_found(what: str) -> ApiError:
    """404 with a message naming the missing thing."""
    return ApiError(404, f"{what} not found")


# Response headers of an aiohttp HTTPException worth keeping on its JSON twin: the body
# (and so Content-Type/Length) is ours, but `Allow` on a 405 is part of the contract.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")


def from_http_exception(exc: web.HTTPException, method: str, path: str) -> ApiError:
    """Any aiohttp HTTP error (404, 405, 413, ...) as an ApiError in the JSON shape."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        # The contract for an oversized body is a 400 that names the field.
        return ApiError(400, f"the request body is too large: {exc.text}", field="body")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        error = ApiError(405, f"{method} is not allowed on {path}; allowed: {allowed}")
    elif isinstance(exc, web.HTTPNotFound):
        error = ApiError(404, f"no such endpoint: {method} {path}")
    else:
        error = ApiError(exc.status, exc.reason)
    kept = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return error.with_headers(kept)
