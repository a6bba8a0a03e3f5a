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
    return InvokeResult(
        activation_id=request.activation_id,
        status=status,
        result=result,
        error=error,
        logs=logs,
        start=timing.wall_start,
        end=timing.wall_start + (now - timing.t0),
        duration_ms=round(duration_ms, 3),
        init_ms=round(timing.init_ms, 3),
        wait_ms=round(timing.wait_ms, 3),
        cold_start=timing.cold,
        memory_mb=request.function.memory_mb,
        node=node,
        peak_memory_mb=usage.peak_memory_mb if usage is not None else None,
        cpu_seconds=usage.cpu_seconds if usage is not None else None,
    )


def activation_from(request: InvokeRequest, result: InvokeResult) -> Activation:
    """The stored form of a finished call."""
    spec = request.function
    return Activation(
        id=request.activation_id,
        tenant=spec.tenant,
        function=spec.name,
        version=spec.version,
        status=result.status,
        result=result.result,
        error=result.error,
        logs=result.logs,
        start=result.start,
        end=result.end,
        duration_ms=result.duration_ms,
        init_ms=result.init_ms,
        wait_ms=result.wait_ms,
        cold_start=result.cold_start,
        memory_mb=result.memory_mb,
        node=result.node,
        trigger=request.trigger,
        peak_memory_mb=result.peak_memory_mb,
        cpu_seconds=result.cpu_seconds,
        attempts=request.attempt,
    )
