"""What a finished call leaves behind: its result as the caller sees it, and its record.

Pure: the invoker measures, these functions only assemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from invoker.api import Activation, InvokeRequest, InvokeResult, Status
from invoker.drivers.base import ContainerStats


@dataclass
class CallTiming:
    """When a call started and how its time was spent, filled in as it goes."""

    wall_start: float  # wall clock, for the record
    t0: float  # monotonic
    wait_ms: float
    cold: bool = False
    init_ms: float = 0.0
    run_start: float | None = None


def outcome_of(
    request: InvokeRequest,
    timing: CallTiming,
    now: float,
    node: str | None,
    status: Status,
    result: Any,
    error: str | None,
    logs: list[str],
    usage: ContainerStats | None = None,
) -> InvokeResult:
    """The call's result, with its timings (rounded to microseconds) and usage."""
    run_start = timing.run_start
    duration_ms = (now - run_start) * 1000 if run_start is not None else 0.0
    # Positional, in `InvokeResult`'s field order, as in `activation_from` (every call
    # builds one; tests/unit/test_records.py pins the order).
    return InvokeResult(
        request.activation_id,
        status,
        result,
        error,
        logs,
        timing.wall_start,  # start
        timing.wall_start + (now - timing.t0),  # end
        round(duration_ms, 3),
        round(timing.init_ms, 3),
        round(timing.wait_ms, 3),
        timing.cold,  # cold_start
        request.function.memory_mb,
        node,
        usage.peak_memory_mb if usage is not None else None,
        usage.cpu_seconds if usage is not None else None,
    )


def activation_from(request: InvokeRequest, result: InvokeResult) -> Activation:
    """The stored form of a finished call."""
    spec, r = request.function, result
    # Positional, in `Activation`'s field order: every call builds one, and naming its 20
    # arguments costs a third more (tests/unit/test_records.py pins the order).
    return Activation(
        request.activation_id,  # id
        spec.tenant,
        spec.name,  # function
        spec.version,
        r.status,
        r.result,
        r.error,
        r.logs,
        r.start,
        r.end,
        r.duration_ms,
        r.init_ms,
        r.wait_ms,
        r.cold_start,
        r.memory_mb,
        r.node,
        request.trigger,
        r.peak_memory_mb,
        r.cpu_seconds,
        request.attempt,  # attempts
    )
