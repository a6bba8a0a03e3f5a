"""A finished call's result and stored form carry each value under its own name
(invoker/records.py builds both positionally, for speed: this pins the order)."""

from __future__ import annotations

from dataclasses import fields

from invoker.api import Activation, FunctionSpec, InvokeRequest, InvokeResult, Status
from invoker.drivers.base import ContainerStats
from invoker.records import CallTiming, activation_from, outcome_of

SPEC = FunctionSpec(
    tenant="acme",
    name="resize",
    version=7,
    runtime="python:3.11",
    handler="main.handler",
    code_sha256="0" * 64,
    code_kind="source",
    memory_mb=512,
)
REQUEST = InvokeRequest("act-1", SPEC, {}, trigger="cron", attempt=3)


def same_fields(built: object, expected: object) -> None:
    for field in fields(type(expected)):  # type: ignore[arg-type]
        assert getattr(built, field.name) == getattr(expected, field.name), field.name


def test_a_result_carries_every_value_in_its_own_field() -> None:
    timing = CallTiming(wall_start=1_000.0, t0=50.0, wait_ms=5.12345, cold=True, init_ms=4.56789)
    timing.run_start = 50.25
    stats = ContainerStats(peak_memory_mb=6.5, cpu_seconds=7.5)
    built = outcome_of(
        REQUEST, timing, 50.5, "node-b", Status.APPLICATION_ERROR, {"p": 1}, "boom", ["l"], stats
    )
    expected = InvokeResult(
        activation_id="act-1",
        status=Status.APPLICATION_ERROR,
        result={"p": 1},
        error="boom",
        logs=["l"],
        start=1_000.0,
        end=1_000.5,
        duration_ms=250.0,
        init_ms=4.568,
        wait_ms=5.123,
        cold_start=True,
        memory_mb=512,
        node="node-b",
        peak_memory_mb=6.5,
        cpu_seconds=7.5,
    )
    same_fields(built, expected)
    unmeasured = outcome_of(REQUEST, timing, 50.5, None, Status.SUCCESS, None, None, [])
    assert (unmeasured.peak_memory_mb, unmeasured.cpu_seconds, unmeasured.node) == (None,) * 3


def test_an_activation_carries_every_value_in_its_own_field() -> None:
    result = InvokeResult(
        activation_id="act-1",
        status=Status.APPLICATION_ERROR,
        result={"partial": True},
        error="boom",
        logs=["a line"],
        start=1.5,
        end=2.5,
        duration_ms=3.5,
        init_ms=4.5,
        wait_ms=5.5,
        cold_start=True,
        memory_mb=1024,
        node="node-b",
        peak_memory_mb=6.5,
        cpu_seconds=7.5,
    )
    expected = Activation(
        id="act-1",
        tenant="acme",
        function="resize",
        version=7,
        status=Status.APPLICATION_ERROR,
        result={"partial": True},
        error="boom",
        logs=["a line"],
        start=1.5,
        end=2.5,
        duration_ms=3.5,
        init_ms=4.5,
        wait_ms=5.5,
        cold_start=True,
        memory_mb=1024,
        node="node-b",
        trigger="cron",
        peak_memory_mb=6.5,
        cpu_seconds=7.5,
        attempts=3,
        dead_letter=False,
    )
    same_fields(activation_from(REQUEST, result), expected)
