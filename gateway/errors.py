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
