"""Metering: one finished activation -> one append-only usage record. Pure.

What is billed is the time inside the function (`duration_ms`, the /run round
trip), rounded up to a step. Container start + /init (`init_ms`) and queueing
(`wait_ms`) are recorded for the provider's view but not billed: a cold start
is the platform's cost, not the caller's.

GB-seconds are exact Decimals: billed_ms * memory_mb / 1024 / 1000 always has a
terminating decimal expansion (the divisor is 2**13 * 5**3), and it is computed
in a context that traps any rounding.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from invoker.api import Activation, FunctionSpec, InvokeResult, Status

_UNFINISHED = frozenset({Status.PENDING, Status.RUNNING})


@dataclass(frozen=True)
class UsageRecord:
    """What one activation used and is billed for.

    `peak_memory_mb` and `cpu_seconds` are None where the driver could not read
    the container's cgroup; they are never estimated.
    """

    tenant: str
    function: str
    version: int
    activation_id: str
    node: str | None
    start: float  # wall clock, seconds since the epoch
    end: float
    duration_ms: float
    billed_ms: int
    memory_mb: int  # allocated, not measured
    gb_seconds: Decimal
    peak_memory_mb: float | None
    cpu_seconds: float | None
    cold_start: bool
    init_ms: float
    wait_ms: float
    status: str

    def to_row(self) -> dict[str, Any]:
        """A flat dict for storage; `gb_seconds` is a string so no digit is lost."""
        # Not dataclasses.asdict (its deep copy costs more than the rest of metering), nor
        # `fields()` per call: the names are read once, below the class.
        row = {name: getattr(self, name) for name in _USAGE_FIELDS}
        row["gb_seconds"] = str(self.gb_seconds)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UsageRecord:
        """Rebuild a record from `to_row()` output (or a database row with the same keys).

        Raises ValueError if a key is missing or `gb_seconds` disagrees with
        billed_ms and memory_mb, which would mean a corrupt or hand-edited row.
        """
        try:
            record = cls(
                tenant=str(row["tenant"]),
                function=str(row["function"]),
                version=int(row["version"]),
                activation_id=str(row["activation_id"]),
                node=None if row["node"] is None else str(row["node"]),
                start=float(row["start"]),
                end=float(row["end"]),
                duration_ms=float(row["duration_ms"]),
                billed_ms=int(row["billed_ms"]),
                memory_mb=int(row["memory_mb"]),
                gb_seconds=Decimal(str(row["gb_seconds"])),
                peak_memory_mb=_opt_float(row["peak_memory_mb"]),
                cpu_seconds=_opt_float(row["cpu_seconds"]),
                cold_start=bool(row["cold_start"]),  # SQLite hands back 0/1
                init_ms=float(row["init_ms"]),
                wait_ms=float(row["wait_ms"]),
                status=str(row["status"]),
            )
        except KeyError as exc:
            raise ValueError(f"usage row lacks {exc.args[0]!r}") from None
        except (TypeError, decimal.InvalidOperation) as exc:
            raise ValueError(f"malformed usage row: {exc}") from None
        if record.gb_seconds != gb_seconds(record.billed_ms, record.memory_mb):
            raise ValueError(
                f"usage row {record.activation_id}: gb_seconds {record.gb_seconds} does not match "
                f"billed_ms={record.billed_ms} x memory_mb={record.memory_mb}"
            )
        return record


_USAGE_FIELDS = tuple(f.name for f in fields(UsageRecord))
# Exact division or an exception: every flag a rounding could raise is a trap.
_PER_GB_SECOND = Decimal(1024 * 1000)
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation])


def billed_ms(duration_ms: float, step_ms: int = 1) -> int:
    """`duration_ms` rounded up to a whole number of `step_ms`; a 0 ms call bills one step.

    The float is converted to Decimal exactly, so a duration a hair above a step
    boundary is never rounded down by float division.
    """
    if step_ms < 1:
        raise ValueError(f"step_ms must be >= 1, got {step_ms}")
    if not math.isfinite(duration_ms) or duration_ms < 0:
        raise ValueError(f"duration_ms must be a finite number >= 0, got {duration_ms}")
    if step_ms == 1:  # the ceiling of a float is exact: no Decimal needed
        return max(math.ceil(duration_ms), 1)
    steps = int((Decimal(duration_ms) / step_ms).to_integral_value(rounding=decimal.ROUND_CEILING))
    return max(steps, 1) * step_ms


def gb_seconds(billed: int, memory_mb: int) -> Decimal:
    """billed_ms * memory_mb / 1024 / 1000, exactly (raises if it ever would not be)."""
    return _EXACT.divide(Decimal(billed * memory_mb), _PER_GB_SECOND)


def meter(result: InvokeResult, spec: FunctionSpec, *, step_ms: int = 1) -> UsageRecord:
    """The usage record of one finished call.

    `spec` names the tenant, function and version; sizes and times come from
    `result` (what the container actually had). Raises ValueError for a call
    that has not finished or carries an impossible duration or size.
    """
    return UsageRecord(
        **_fields(spec.key, result.activation_id, result.duration_ms, result, step_ms)
    )


def usage_row(result: InvokeResult, spec: FunctionSpec, *, step_ms: int = 1) -> dict[str, Any]:
    """`meter(result, spec, step_ms=step_ms).to_row()`, without the record in between: every
    synchronous call builds one (its keys in the same order, so its JSON is the same text)."""
    row = _fields(spec.key, result.activation_id, result.duration_ms, result, step_ms)
    row["gb_seconds"] = str(row["gb_seconds"])
    return row


def meter_activation(activation: Activation, *, step_ms: int = 1) -> UsageRecord:
    """The usage record of a stored, finished activation.

    Raises ValueError if the activation has not finished or lacks a time the
    record needs (those are not filled in with guesses).
    """
    a = activation
    if (
        a.start is None
        or a.end is None
        or a.duration_ms is None
        or a.init_ms is None
        or a.wait_ms is None
        or a.cold_start is None
    ):
        fields = ("start", "end", "duration_ms", "init_ms", "wait_ms", "cold_start")
        missing = ", ".join(f for f in fields if getattr(a, f) is None)
        raise ValueError(f"activation {a.id} cannot be metered: no {missing}")
    names = (a.tenant, a.function, a.version)
    return UsageRecord(**_fields(names, a.id, a.duration_ms, a, step_ms))


def _fields(
    names: tuple[str, str, int],
    activation_id: str,
    duration_ms: float,
    source: InvokeResult | Activation,
    step_ms: int,
) -> dict[str, Any]:
    """A usage record's fields, in `UsageRecord`'s order: tenant, function and version from
    `names`, sizes and times from `source` (a result, or an activation checked to have
    them all)."""
    status = source.status
    memory_mb = source.memory_mb
    if status in _UNFINISHED:
        raise ValueError(f"activation {activation_id} is {status.value}, not finished")
    if memory_mb <= 0:
        raise ValueError(f"activation {activation_id}: memory_mb must be > 0, got {memory_mb}")
    billed = billed_ms(duration_ms, step_ms)
    return {
        "tenant": names[0],
        "function": names[1],
        "version": names[2],
        "activation_id": activation_id,
        "node": source.node,
        "start": source.start,
        "end": source.end,
        "duration_ms": duration_ms,
        "billed_ms": billed,
        "memory_mb": memory_mb,
        "gb_seconds": gb_seconds(billed, memory_mb),
        "peak_memory_mb": source.peak_memory_mb,
        "cpu_seconds": source.cpu_seconds,
        "cold_start": source.cold_start,
        "init_ms": source.init_ms,
        "wait_ms": source.wait_ms,
        "status": status.value,
    }


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
