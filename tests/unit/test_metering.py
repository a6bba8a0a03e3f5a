"""Metering: an activation becomes a usage record whose bill is never below what was used."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoker.api import Activation, FunctionSpec, InvokeResult, Status
from invoker.metering import (
    UsageRecord,
    billed_ms,
    gb_seconds,
    meter,
    meter_activation,
    usage_row,
)

durations = st.floats(min_value=0, max_value=900_000, allow_nan=False, allow_infinity=False)
steps = st.sampled_from([1, 10, 100, 1000]) | st.integers(min_value=1, max_value=5000)
memories = st.integers(min_value=1, max_value=10_240)
finished = st.sampled_from([s for s in Status if s not in (Status.PENDING, Status.RUNNING)])


def _spec(memory_mb: int = 256) -> FunctionSpec:
    return FunctionSpec(
        tenant="acme",
        name="resize",
        version=3,
        runtime="python:3.11",
        handler="main.handler",
        code_sha256="0" * 64,
        code_kind="source",
        memory_mb=memory_mb,
    )


def _result(
    duration_ms: float,
    memory_mb: int = 256,
    status: Status = Status.SUCCESS,
    peak: float | None = None,
    cpu: float | None = None,
) -> InvokeResult:
    return InvokeResult(
        activation_id="act-1",
        status=status,
        result={"ok": True},
        error=None,
        logs=[],
        start=1_700_000_000.0,
        end=1_700_000_000.0 + duration_ms / 1000,
        duration_ms=duration_ms,
        init_ms=412.5,
        wait_ms=3.25,
        cold_start=True,
        memory_mb=memory_mb,
        node="node-a",
        peak_memory_mb=peak,
        cpu_seconds=cpu,
    )


@given(durations, steps)
def test_rounding_never_bills_less_than_used(duration: float, step: int) -> None:
    billed = billed_ms(duration, step)
    assert Fraction(billed) >= Fraction(duration)
    assert billed % step == 0
    assert billed >= step
    # Rounded up by less than one step (except a 0 ms call, which bills one step).
    assert Fraction(billed) - Fraction(duration) < step or duration == 0


@given(st.integers(min_value=1, max_value=10_000), steps)
def test_a_hair_over_a_step_boundary_bills_the_next_step(n: int, step: int) -> None:
    exact = float(n * step)
    assert billed_ms(exact, step) == n * step
    assert billed_ms(math.nextafter(exact, math.inf), step) == (n + 1) * step


@given(steps)
def test_zero_ms_call_bills_one_step(step: int) -> None:
    assert billed_ms(0.0, step) == step


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf])
def test_impossible_durations_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="duration_ms"):
        billed_ms(bad)


def test_step_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step_ms"):
        billed_ms(5.0, 0)


@given(st.integers(min_value=1, max_value=10**7), memories)
def test_gb_seconds_is_exact(billed: int, memory: int) -> None:
    value = gb_seconds(billed, memory)
    assert Fraction(value) == Fraction(billed * memory, 1024 * 1000)


@given(durations, steps, memories, finished)
def test_meter_record_matches_the_call(
    duration: float, step: int, memory: int, status: Status
) -> None:
    result = _result(duration, memory_mb=memory, status=status)
    record = meter(result, _spec(), step_ms=step)
    assert (record.tenant, record.function, record.version) == ("acme", "resize", 3)
    assert record.activation_id == result.activation_id
    assert record.node == result.node
    assert record.memory_mb == memory  # what the container had, not the spec's default
    assert record.billed_ms == billed_ms(duration, step)
    assert Fraction(record.gb_seconds) == Fraction(record.billed_ms * memory, 1024 * 1000)
    assert record.status == status.value
    assert (record.cold_start, record.init_ms, record.wait_ms) == (True, 412.5, 3.25)


def test_unmeasured_peak_and_cpu_stay_unknown() -> None:
    record = meter(_result(10.0), _spec())
    assert record.peak_memory_mb is None
    assert record.cpu_seconds is None
    measured = meter(_result(10.0, peak=61.5, cpu=0.25), _spec())
    assert (measured.peak_memory_mb, measured.cpu_seconds) == (61.5, 0.25)


@pytest.mark.parametrize("status", [Status.PENDING, Status.RUNNING])
def test_unfinished_calls_are_not_metered(status: Status) -> None:
    with pytest.raises(ValueError, match="not finished"):
        meter(_result(10.0, status=status), _spec())


def _activation(**changes: object) -> Activation:
    fields: dict[str, object] = {
        "id": "act-9",
        "tenant": "acme",
        "function": "resize",
        "version": 2,
        "status": Status.APPLICATION_ERROR,
        "result": None,
        "error": "boom",
        "logs": [],
        "start": 1_700_000_100.0,
        "end": 1_700_000_100.5,
        "duration_ms": 499.2,
        "init_ms": 0.0,
        "wait_ms": 1.0,
        "cold_start": False,
        "memory_mb": 512,
        "node": "node-b",
    }
    fields.update(changes)
    return Activation(**fields)  # type: ignore[arg-type]


def test_meter_activation_uses_the_stored_activation() -> None:
    record = meter_activation(_activation(), step_ms=100)
    assert (record.tenant, record.function, record.version) == ("acme", "resize", 2)
    assert record.billed_ms == 500
    assert record.gb_seconds == Decimal(500 * 512) / Decimal(1024 * 1000)
    assert record.status == "application_error"


def test_meter_activation_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="duration_ms"):
        meter_activation(_activation(duration_ms=None))


records = st.builds(
    lambda duration, step, memory, status, peak, cpu: meter(
        _result(duration, memory_mb=memory, status=status, peak=peak, cpu=cpu),
        _spec(),
        step_ms=step,
    ),
    durations,
    steps,
    memories,
    finished,
    st.none() | st.floats(min_value=0, max_value=10_000),
    st.none() | st.floats(min_value=0, max_value=1_000),
)


@given(records)
def test_row_round_trip_survives_json(record: UsageRecord) -> None:
    row = json.loads(json.dumps(record.to_row()))
    assert UsageRecord.from_row(row) == record


def test_a_tampered_row_is_refused() -> None:
    row = meter(_result(10.0), _spec()).to_row()
    row["gb_seconds"] = "99"
    with pytest.raises(ValueError, match="gb_seconds"):
        UsageRecord.from_row(row)
    del row["billed_ms"]
    with pytest.raises(ValueError, match="billed_ms"):
        UsageRecord.from_row(row)


@given(
    durations,
    steps,
    memories,
    finished,
    st.none() | st.floats(min_value=0, max_value=10_000),
    st.none() | st.floats(min_value=0, max_value=1_000),
)
def test_the_stored_usage_row_is_the_records_row(
    duration: float, step: int, memory: int, status: Status, peak: float | None, cpu: float | None
) -> None:
    # Every synchronous call stores `usage_row`; a bill read back must be `meter`'s, to the
    # digit and in the same key order (the same JSON text).
    result = _result(duration, memory_mb=memory, status=status, peak=peak, cpu=cpu)
    row = usage_row(result, _spec(), step_ms=step)
    expected = meter(result, _spec(), step_ms=step).to_row()
    assert list(row.items()) == list(expected.items())
    assert json.dumps(row) == json.dumps(expected)
    assert UsageRecord.from_row(json.loads(json.dumps(row))) == meter(result, _spec(), step_ms=step)


@pytest.mark.parametrize(
    ("result", "match"),
    [
        (_result(10.0, status=Status.RUNNING), "not finished"),
        (_result(10.0, memory_mb=0), "memory"),
    ],
)
def test_the_usage_row_refuses_what_meter_refuses(result: InvokeResult, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        usage_row(result, _spec())
    with pytest.raises(ValueError, match=match):
        meter(result, _spec())
