"""What the invoker keeps of a container's answer, and what it tells the tenant.

A container's answer is hostile input: its result, logs and error text are bounded here
before anything stores or returns them. Platform failures are described to the tenant in
the platform's words only: host paths, container ids and engine addresses go to the
operator's log, never into an activation. Pure functions.
"""

from __future__ import annotations

import json
from typing import Any

from invoker.runtime_client import MAX_LOG_BYTES, MAX_RESULT_BYTES

MAX_ERROR_CHARS = 4096
"""The longest error message a function's answer may put in its activation."""
LOGS_TRUNCATED = "[nimbus] logs truncated: a call keeps at most {} bytes of log"
PLATFORM_START_FAILED = "the platform could not start a container for this call"
PLATFORM_INIT_FAILED = "the platform could not load the function into its container"
PLATFORM_START_TIMEOUT = "the platform timed out starting a container for this call"


def bounded_logs(lines: Any) -> list[str]:
    """At most MAX_LOG_BYTES of log lines, as strings, with a marker where cut."""
    if not isinstance(lines, list):
        return []
    kept: list[str] = []
    size = 0
    for line in lines:
        text = line if isinstance(line, str) else str(line)
        size += len(text) + 1
        if size > MAX_LOG_BYTES:
            kept.append(LOGS_TRUNCATED.format(MAX_LOG_BYTES))
            break
        kept.append(text)
    return kept


def oversized_result(reply_bytes: int, result: Any) -> str | None:
    """The function's error when its result passes MAX_RESULT_BYTES as JSON, else None.

    Only an answer larger than the limit can hold such a result, so the common case costs
    a comparison, not a second serialisation.
    """
    if reply_bytes <= MAX_RESULT_BYTES:
        return None
    size = len(json.dumps(result, separators=(",", ":")).encode())
    if size <= MAX_RESULT_BYTES:
        return None
    return result_too_large(size)


def result_too_large(size: int | None = None) -> str:
    """The function's error for a result over the limit."""
    got = f" ({size} bytes)" if size is not None else ""
    return f"the function's result is larger than the {MAX_RESULT_BYTES} byte limit{got}"


def function_error(body: dict[str, Any], status: int) -> str:
    """The error text a function's failed call answered, bounded."""
    error = body.get("error")
    text = str(error) if error else f"/run answered {status}"
    if len(text) > MAX_ERROR_CHARS:
        return text[:MAX_ERROR_CHARS] + " [truncated]"
    return text


def container_ended(memory_mb: int, reason: str | None) -> str:
    """The tenant's message for a call whose container stopped under it."""
    if reason == "it ran out of memory":
        return (
            f"the function's container ran out of memory (limit {memory_mb} MB) and was "
            "stopped during the call"
        )
    if reason is None:
        return "the function's container stopped during the call"
    return f"the function's container stopped during the call: {reason}"
