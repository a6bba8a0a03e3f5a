"""webhook_echo: answers with what it was sent, for trying out http triggers and rules.

Returns the event, the HTTP headers it carries (when the trigger put them in the event
under ``"headers"``), the activation id, and the UTC time the function ran. Credentials
in headers (Authorization, Cookie, API keys, signatures) are replaced with
``"[redacted]"``: the result is stored in the activation record, and a secret must not
be kept there in clear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"
SECRET_HEADERS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-nimbus-api-key",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-amz-security-token",
}


def redact(headers: dict[str, Any]) -> dict[str, Any]:
    """The headers with credential values replaced (names compared case-insensitively)."""
    return {
        name: REDACTED if name.lower() in SECRET_HEADERS else value
        for name, value in headers.items()
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Echo the event (headers redacted), with the activation id and a timestamp."""
    raw_headers = event.get("headers")
    headers = redact(raw_headers) if isinstance(raw_headers, dict) else {}
    echoed = {k: v for k, v in event.items() if k != "headers"}
    print(f"echoing {len(echoed)} fields and {len(headers)} headers")
    return {
        "event": echoed,
        "headers": headers,
        "activation_id": getattr(context, "aws_request_id", None),
        "received_at": datetime.now(UTC).isoformat(),
    }
