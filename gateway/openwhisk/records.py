"""PURE: Nimbus activation records as OpenWhisk's.

OpenWhisk's `response.status` has four values; Nimbus's statuses map onto them so that a
client's checks (`response.success`, `statusCode`) mean what they mean on OpenWhisk:

| Nimbus | OpenWhisk | statusCode |
| --- | --- | --- |
| success, result without `error` | success | 0 |
| success, result an object with `error` | application error | 1 |
| application_error (raised, failed to load, died), timeout | action developer error | 2 |
| platform_error | whisk internal error | 3 |

Log lines carry no time or stream of their own in Nimbus: each gets the activation's
start time and `stdout`, in OpenWhisk's `<ISO time> stdout: <text>` form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from invoker.api import Activation, Status

SUCCESS, APPLICATION_ERROR, DEVELOPER_ERROR, WHISK_ERROR = 0, 1, 2, 3
STATUS_TEXT = {
    SUCCESS: "success",
    APPLICATION_ERROR: "application error",
    DEVELOPER_ERROR: "action developer error",
    WHISK_ERROR: "whisk internal error",
}
UNFINISHED = frozenset({Status.PENDING, Status.RUNNING})
DEFAULT_LOGS_MB = 10


@dataclass(frozen=True)
class ActionFacts:
    """What an activation's annotations say of its action, when the action still exists."""

    kind: str
    timeout_s: float
    concurrency: int
    sequence: bool = False  # its logs are its steps' activation ids, as they are


def semver(version: int) -> str:
    """Nimbus's integer version as OpenWhisk's semantic version: 7 -> "0.0.7"."""
    return f"0.0.{version}"


def epoch_ms(seconds: float | None) -> int:
    """Epoch seconds as OpenWhisk's epoch milliseconds (0 for none)."""
    return 0 if seconds is None else round(seconds * 1000)


def iso(seconds: float) -> str:
    """An ISO-8601 UTC time with microseconds and `Z`, as OpenWhisk's log lines start."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def status_code(activation: Activation) -> int:
    """OpenWhisk's statusCode of a finished activation."""
    if activation.status is Status.SUCCESS:
        result = activation.result
        return APPLICATION_ERROR if isinstance(result, dict) and "error" in result else SUCCESS
    if activation.status in (Status.APPLICATION_ERROR, Status.TIMEOUT):
        return DEVELOPER_ERROR
    return WHISK_ERROR


def result_of(activation: Activation) -> Any:
    """`response.result`: the function's result, or `{"error": ...}` when it failed."""
    if activation.status is Status.SUCCESS:
        return activation.result if activation.result is not None else {}
    return {"error": activation.error or activation.status.value}


def response_of(activation: Activation) -> dict[str, Any]:
    """`response`, as in the record and as `GET .../activations/{id}/result` answers."""
    code = status_code(activation)
    return {
        "status": STATUS_TEXT[code],
        "statusCode": code,
        "success": code == SUCCESS,
        "result": result_of(activation),
    }


def log_lines(activation: Activation, facts: ActionFacts | None = None) -> list[str]:
    """The logs in OpenWhisk's line format (a sequence's: its steps' activation ids)."""
    if facts is not None and facts.sequence:
        return list(activation.logs)
    stamp = iso(activation.start if activation.start is not None else activation.end or 0.0)
    return [f"{stamp} stdout: {line}" for line in activation.logs]


def limits_of(activation: Activation, facts: ActionFacts | None) -> dict[str, Any]:
    """The `limits` annotation: the memory the call ran with, and its action's others."""
    limits: dict[str, Any] = {"memory": activation.memory_mb, "logs": DEFAULT_LOGS_MB}
    if facts is not None:
        limits["timeout"] = round(facts.timeout_s * 1000)
        limits["concurrency"] = facts.concurrency
    return limits


def annotations_of(activation: Activation, facts: ActionFacts | None) -> list[dict[str, Any]]:
    """`path`, `kind`, `limits`, `waitTime` and, on a cold start, `initTime`."""
    found: list[dict[str, Any]] = [
        {"key": "path", "value": f"{activation.tenant}/{activation.function}"},
        {"key": "kind", "value": facts.kind if facts is not None else "python:3.11"},
        {"key": "limits", "value": limits_of(activation, facts)},
        {"key": "waitTime", "value": round(activation.wait_ms or 0)},
    ]
    if activation.cold_start:
        found.append({"key": "initTime", "value": round(activation.init_ms or 0)})
    if activation.trigger is not None:
        found.append({"key": "cause", "value": activation.trigger})
    return found


def summary(activation: Activation, facts: ActionFacts | None) -> dict[str, Any]:
    """A listing's entry without `docs`: the record without its result and logs."""
    start, end = epoch_ms(activation.start), epoch_ms(activation.end)
    return {
        "activationId": activation.id,
        "namespace": activation.tenant,
        "name": activation.function,
        "version": semver(activation.version),
        "subject": activation.tenant,
        "start": start,
        "end": end,
        "duration": max(0, end - start) if activation.start and activation.end else 0,
        "statusCode": status_code(activation),
        "annotations": annotations_of(activation, facts),
        "publish": False,
    }


def record(activation: Activation, facts: ActionFacts | None) -> dict[str, Any]:
    """The whole OpenWhisk activation record."""
    doc = summary(activation, facts)
    del doc["statusCode"]
    doc["response"] = response_of(activation)
    doc["logs"] = log_lines(activation, facts)
    return doc
