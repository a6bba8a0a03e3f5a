"""The pure half of the Kubernetes node provider: quantities, taints, node objects."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as client_parse_quantity

from invoker.drivers.kubernetes_pods import cpu_quantity
from invoker.providers.kubernetes_nodes import (
    Taint,
    Toleration,
    blocking_taints,
    memory_mb,
    node_from_api,
    parse_quantity,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4", Decimal(4)),
        ("3920m", Decimal("3.92")),
        ("100n", Decimal("1E-7")),
        ("250u", Decimal("0.00025")),
        ("16Gi", Decimal(16 * 2**30)),
        ("8123456Ki", Decimal(8123456 * 1024)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1G", Decimal(10**9)),
        ("3500M", Decimal(3_500_000_000)),
        ("128974848", Decimal(128974848)),
        ("129e6", Decimal(129_000_000)),
        ("1E3", Decimal(1000)),  # E followed by digits: an exponent
        ("1E", Decimal(10**18)),  # E alone: exa
        ("2Ei", Decimal(2 * 2**60)),
        ("12e-3", Decimal("0.012")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+1k", Decimal(1000)),
        ("-1m", Decimal("-0.001")),
        ("0", Decimal(0)),
    ],
)
def test_parse_quantity_values(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "Gi", "1K", "1KB", "1gi", "1ki", "1 Gi", " 1", "1.2.3", "1e", "1e1.5", "1Mi3",
     "0x10", "NaN", "Infinity", "1_000", "1e+", "--1", "1mi"],
)  # fmt: skip
def test_parse_quantity_rejects_what_the_api_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_parse_quantity_rejects_an_absurd_exponent_cleanly() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_quantity("1e99999999")


_NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**9).map(str),
    st.tuples(st.integers(0, 99999), st.integers(0, 9999)).map(lambda t: f"{t[0]}.{t[1]}"),
)
_SUFFIXES = st.sampled_from(
    ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
    + [f"e{i}" for i in range(-6, 7)]
    + [f"E{i}" for i in range(0, 7)]
)


@given(_NUMBERS, _SUFFIXES)
def test_parse_quantity_agrees_with_the_official_client_on_valid_input(
    number: str, suffix: str
) -> None:
    # The client's parser is lax on invalid input ("1K", "NaN"), but on the valid
    # grammar it is an independent implementation: use it as an oracle there.
    text = number + suffix
    assert parse_quantity(text) == client_parse_quantity(text)  # type: ignore[no-untyped-call]


@given(st.integers(min_value=0, max_value=2**40))
def test_binary_and_plain_forms_of_the_same_bytes_agree(n: int) -> None:
    assert parse_quantity(f"{n}Ki") == parse_quantity(str(n * 1024))
    assert parse_quantity(f"{n}Mi") == parse_quantity(f"{n * 1024}Ki")
    assert parse_quantity(f"{n}m") * 1000 == n


@pytest.mark.parametrize(
    ("text", "mib"),
    [("16Gi", 16384), ("1G", 953), ("8123456Ki", 7933), ("1Mi", 1), ("1048575", 0), ("512M", 488)],
)
def test_memory_mb_rounds_down_never_up(text: str, mib: int) -> None:
    assert memory_mb(text) == mib


@given(st.integers(min_value=1, max_value=64_000))
def test_cpu_quantity_round_trips_through_the_parser(millis: int) -> None:
    cores = millis / 1000
    assert parse_quantity(cpu_quantity(cores)) == Decimal(millis) / 1000


# --- taints ---------------------------------------------------------------------

NO_SCHEDULE = Taint("nimbus.io/dedicated", "NoSchedule", "functions")


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        (Toleration("nimbus.io/dedicated", "Equal", "functions", "NoSchedule"), True),
        (Toleration("nimbus.io/dedicated", "Equal", "functions"), True),  # any effect
        (Toleration("nimbus.io/dedicated", "Exists"), True),
        (Toleration(operator="Exists"), True),  # tolerates everything
        (Toleration("nimbus.io/dedicated", "Equal", "batch", "NoSchedule"), False),
        (Toleration("nimbus.io/dedicated", "Equal", "functions", "NoExecute"), False),
        (Toleration("other", "Exists"), False),
    ],
)
def test_toleration_matching(toleration: Toleration, tolerated: bool) -> None:
    assert toleration.matches(NO_SCHEDULE) is tolerated


def test_invalid_tolerations_are_refused() -> None:
    with pytest.raises(ValueError):
        Toleration("k", "Exists", "v")
    with pytest.raises(ValueError):
        Toleration("", "Equal", "v")
    with pytest.raises(ValueError):
        Toleration("k", "In", "v")


def test_prefer_no_schedule_never_blocks() -> None:
    soft = Taint("example.com/batch", "PreferNoSchedule", "true")
    hard = Taint("node.kubernetes.io/unreachable", "NoExecute")
    assert blocking_taints([soft, hard, NO_SCHEDULE], ()) == [hard, NO_SCHEDULE]


# --- node objects -------------------------------------------------------------------


def _nodes() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((FIXTURES / "node-list.json").read_text())["items"]
    return items


def test_node_from_api_reads_the_recorded_worker() -> None:
    raw = next(n for n in _nodes() if n["metadata"]["name"] == "worker-a")
    node = node_from_api(raw, [Toleration("nimbus.io/dedicated", "Exists")])
    assert node.id == "worker-a"
    assert node.vcpu == pytest.approx(3.92)
    assert node.memory_mb == 15224636 // 1024  # allocatable, not capacity
    assert node.ready and node.schedulable and node.usable
    assert node.labels["nimbus.io/pool"] == "functions"
    assert node.taints == (NO_SCHEDULE,)


def test_a_cordoned_node_is_not_schedulable_even_when_its_taint_is_tolerated() -> None:
    raw = next(n for n in _nodes() if n["metadata"]["name"] == "worker-c")
    node = node_from_api(raw, [Toleration(operator="Exists")])
    assert node.ready and not node.schedulable


def test_a_node_without_a_ready_condition_is_not_ready() -> None:
    raw = next(n for n in _nodes() if n["metadata"]["name"] == "worker-b")
    raw["status"]["conditions"] = [c for c in raw["status"]["conditions"] if c["type"] != "Ready"]
    assert not node_from_api(raw).ready
