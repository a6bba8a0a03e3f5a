"""Invocation metrics: what a scrape shows equals the calls made, by tenant, function and
status, with labels capped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from invoker.api import FunctionSpec, InvokeResult, Status
from invoker.metrics import OTHER, InvokerMetrics


def _spec(tenant: str, name: str) -> FunctionSpec:
    return FunctionSpec(
        tenant=tenant,
        name=name,
        version=1,
        runtime="python:3.11",
        handler="main.handler",
        code_sha256="0" * 64,
        code_kind="source",
    )


def _result(status: Status, *, cold: bool = False) -> InvokeResult:
    return InvokeResult(
        activation_id="a",
        status=status,
        result=None,
        error=None,
        logs=[],
        start=0.0,
        end=0.002,
        duration_ms=2.0,
        init_ms=40.0 if cold else 0.0,
        wait_ms=0.0,
        cold_start=cold,
        memory_mb=128,
        node=None,
    )


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_every_call_is_counted_under_its_status_with_its_duration() -> None:
    registry = CollectorRegistry()
    metrics = InvokerMetrics(registry)
    spec = _spec("acme", "resize")
    for _ in range(5):
        metrics.observe(spec, _result(Status.SUCCESS))
    metrics.observe(spec, _result(Status.APPLICATION_ERROR, cold=True))
    metrics.observe(spec, _result(Status.PLATFORM_ERROR))
    labels = {"tenant": "acme", "function": "resize"}
    assert _value(registry, "nimbus_invocations_total", **labels, status="success") == 5
    assert _value(registry, "nimbus_invocations_total", **labels, status="application_error") == 1
    assert _value(registry, "nimbus_invocations_total", **labels, status="platform_error") == 1
    # A platform error never ran the function: no time inside it is observed.
    assert _value(registry, "nimbus_invocation_duration_seconds_count", **labels) == 6
    assert _value(registry, "nimbus_cold_starts_total", **labels) == 1
    assert _value(registry, "nimbus_init_duration_seconds_count", **labels) == 1


def test_a_function_that_only_failed_on_the_platform_has_no_duration_series() -> None:
    registry = CollectorRegistry()
    metrics = InvokerMetrics(registry)
    metrics.observe(_spec("acme", "never-ran"), _result(Status.PLATFORM_ERROR))
    labels = {"tenant": "acme", "function": "never-ran"}
    assert _value(registry, "nimbus_invocations_total", **labels, status="platform_error") == 1
    assert _value(registry, "nimbus_invocation_duration_seconds_count", **labels) is None
    assert _value(registry, "nimbus_cold_starts_total", **labels) is None


def test_pairs_past_the_label_cap_are_counted_as_other() -> None:
    registry = CollectorRegistry()
    metrics = InvokerMetrics(registry, label_cap=2)
    for name in ("a", "b", "c", "d", "a", "c"):
        metrics.observe(_spec("acme", name), _result(Status.SUCCESS))
    success = {"status": "success"}
    assert _value(registry, "nimbus_invocations_total", tenant="acme", function="a", **success) == 2
    assert _value(registry, "nimbus_invocations_total", tenant="acme", function="b", **success) == 1
    assert (
        _value(registry, "nimbus_invocations_total", tenant="acme", function="c", **success) is None
    )
    other = {"tenant": OTHER, "function": OTHER}
    assert _value(registry, "nimbus_invocations_total", **other, **success) == 3
    assert _value(registry, "nimbus_invocation_duration_seconds_count", **other) == 3


def test_an_admitted_pair_keeps_its_labels_for_new_statuses_once_the_cap_is_full() -> None:
    registry = CollectorRegistry()
    metrics = InvokerMetrics(registry, label_cap=1)
    metrics.observe(_spec("acme", "a"), _result(Status.SUCCESS))
    for _ in range(2):
        metrics.observe(_spec("acme", "b"), _result(Status.SUCCESS, cold=True))
    metrics.observe(_spec("acme", "a"), _result(Status.APPLICATION_ERROR, cold=True))
    a = {"tenant": "acme", "function": "a"}
    other = {"tenant": OTHER, "function": OTHER}
    assert _value(registry, "nimbus_invocations_total", **a, status="application_error") == 1
    assert _value(registry, "nimbus_cold_starts_total", **a) == 1
    assert _value(registry, "nimbus_invocations_total", **other, status="success") == 2
    assert _value(registry, "nimbus_cold_starts_total", **other) == 2
    assert _value(registry, "nimbus_cold_starts_total", tenant="acme", function="b") is None
