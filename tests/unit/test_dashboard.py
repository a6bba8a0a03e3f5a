"""The Grafana dashboard only plots series that Nimbus exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.metrics import http_histogram
from invoker.metrics import InvokerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    metrics = InvokerMetrics(registry)
    metrics.watch(
        lambda: {"idle": 1},
        lambda: [("n1", "memory_mb", 1.0, 2.0)],
        lambda: 3,
        packing=lambda: (2, 1),
    )
    http_histogram(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def test_every_dashboard_series_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\bnimbus_[a-z_]+", target["expr"]))
    assert used, "the dashboard plots nothing"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
