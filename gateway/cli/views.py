"""What each listing looks like as a table: pure, from the API's JSON to lines, cut to a
width (None: whole lines)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.cli.tables import Column, cell_text, fields, render
from gateway.cli.timeparse import iso

Payload = Mapping[str, Any]


def functions(payload: Payload, width: int | None) -> list[str]:
    """`nimbus functions`."""
    cols = [Column("name"), Column("version", True), Column("runtime"), Column("memory", True)]
    cols += [Column("timeout", True), Column("handler"), Column("updated")]
    rows = [
        [
            f["name"],
            f["version"],
            f.get("runtime", ""),
            f"{f['memory_mb']} MB" if f.get("memory_mb") is not None else "",
            f"{f['timeout_s']:g} s" if f.get("timeout_s") is not None else "",
            f.get("handler") or ("sequence" if f.get("sequence") else ""),
            iso(f.get("updated")),
        ]
        for f in payload["functions"]
    ]
    return render(cols, rows, width)


def versions(payload: Payload, width: int | None) -> list[str]:
    """`nimbus functions versions NAME`: newest first, the latest marked."""
    cols = [Column("version", True), Column("latest"), Column("created"), Column("sha256")]
    cols += [Column("memory", True), Column("handler"), Column("aliases")]
    latest = payload.get("latest")
    rows = [
        [
            v["version"],
            "*" if v["version"] == latest else "",
            iso(v.get("created")),
            (v.get("code_sha256") or "")[:12],
            f"{v['memory_mb']} MB" if v.get("memory_mb") is not None else "",
            v.get("handler") or "",
            v.get("aliases", []),
        ]
        for v in payload["versions"]
    ]
    return render(cols, rows, width)


def split_text(alias: Payload) -> str:
    """An alias's target: `3`, or `3=0.9,4=0.1` for a split."""
    if alias.get("version") is not None:
        return str(alias["version"])
    return ",".join(f"{v}={w:g}" for v, w in sorted(alias["versions"].items(), key=_by_number))


def _by_number(item: tuple[str, float]) -> int:
    return int(item[0])


def aliases(payload: Payload, width: int | None) -> list[str]:
    """`nimbus functions alias list NAME`."""
    cols = [Column("alias"), Column("versions"), Column("updated")]
    rows = [[a["name"], split_text(a), iso(a.get("updated"))] for a in payload["aliases"]]
    return render(cols, rows, width)


def activations(payload: Payload, width: int | None) -> list[str]:
    """`nimbus activations`."""
    cols = [Column("id"), Column("function"), Column("version", True), Column("status")]
    cols += [Column("start"), Column("duration", True), Column("cold")]
    rows = [activation_row(a) for a in payload["activations"]]
    return render(cols, rows, width)


def activation_row(a: Payload) -> list[Any]:
    """One activation as a row of `activations` (and of `activations --follow`)."""
    duration = a.get("duration_ms")
    return [
        a["activation_id"],
        a["function"],
        a.get("version"),
        a["status"],
        iso(a.get("start")),
        f"{duration:.1f} ms" if duration is not None else "",
        bool(a.get("cold_start")),
    ]


def activation_line(a: Payload) -> list[str]:
    """One finished activation as `activations --follow` prints it (no header)."""
    return ["  ".join(cell_text(c) for c in activation_row(a))]


def log_lines(a: Payload) -> list[str]:
    """An activation's log lines, each after its activation's id (as `logs` prints)."""
    return [f"{a['activation_id']}  {line}" for line in a.get("logs") or []]


def trigger_source(t: Payload) -> str:
    """What fires a trigger: its schedule, its bucket filter, or a POST."""
    if t["type"] == "schedule":
        return f"{t.get('cron')} ({t.get('timezone', 'UTC')})"
    if t["type"] == "bucket":
        pattern = f"{t.get('prefix', '')}*{t.get('suffix', '')}"
        return f"{t.get('bucket')} {','.join(t.get('events', []))} {pattern}"
    return "fire / webhook" if t.get("webhook") else "fire"


def triggers(payload: Payload, width: int | None) -> list[str]:
    """`nimbus triggers list`."""
    cols = [Column("name"), Column("type"), Column("source"), Column("last fire")]
    rows = [
        [t["name"], t["type"], trigger_source(t), iso(t.get("last_fire"))]
        for t in payload["triggers"]
    ]
    return render(cols, rows, width)


def rules(payload: Payload, width: int | None) -> list[str]:
    """`nimbus rules list`."""
    cols = [Column("name"), Column("trigger"), Column("function"), Column("enabled")]
    rows = [[r["name"], r["trigger"], r["function"], r["enabled"]] for r in payload["rules"]]
    return render(cols, rows, width)


def buckets(payload: Payload, width: int | None) -> list[str]:
    """`nimbus buckets list`."""
    rows = [[b["name"], iso(b.get("created"))] for b in payload["buckets"]]
    return render([Column("name"), Column("created")], rows, width)


def objects(payload: Payload, width: int | None) -> list[str]:
    """`nimbus buckets objects BUCKET`."""
    cols = [Column("key"), Column("size", True), Column("type"), Column("updated")]
    rows = [
        [o["key"], o["size"], o.get("content_type", ""), iso(o.get("updated"))]
        for o in payload["objects"]
    ]
    more = payload.get("next_start_after") if payload.get("truncated") else None
    return render(cols, rows, width) + ([f"(more: --start-after {more})"] if more else [])


def nodes(payload: Payload, width: int | None) -> list[str]:
    """`nimbus nodes list`: each node's share of its capacity in use."""
    cols = [Column("id"), Column("flavor"), Column("state"), Column("vcpu", True)]
    cols += [Column("memory", True), Column("containers", True), Column("$/h", True)]
    rows = [
        [
            n["id"],
            n["flavor"],
            n["state"],
            f"{n['allocated']['vcpu']:g}/{n['capacity']['vcpu']:g}",
            f"{n['allocated']['memory_mb']}/{n['capacity']['memory_mb']} MB",
            len(n.get("containers", [])),
            n.get("price_per_hour"),
        ]
        for n in payload["nodes"]
    ]
    heading = f"provider: {payload.get('provider')}"
    return [heading, *render(cols, rows, width)]


def economics(payload: Payload, width: int | None) -> list[str]:
    """`nimbus economics`: the overall figures, then each node's."""
    head = f"economics from {payload['from']} to {payload['to']} ({payload['currency']})"
    cols = [Column("node"), Column("flavor"), Column("vm hours", True), Column("vm cost", True)]
    cols += [Column("calls", True), Column("utilisation", True)]
    rows = [
        [
            n["node_id"],
            n["flavor"],
            n["vm_hours"],
            n["vm_cost"],
            n["invocations"],
            n.get("utilisation") or "",
        ]
        for n in payload["nodes"]
    ]
    revenue = [[t, v] for t, v in sorted(payload.get("revenue_by_tenant", {}).items())]
    return [
        head,
        *fields(payload["overall"], width),
        "",
        *render(cols, rows, width),
        "",
        *render([Column("tenant"), Column("revenue", True)], revenue, width),
    ]


TIME_FIELDS = frozenset({"created", "updated", "last_fire", "start", "end"})


def record(payload: Payload, width: int | None) -> list[str]:
    """One resource (a function, trigger, rule) as `field  value` lines, its times in
    ISO-8601."""
    shown = {
        k: iso(v) if k in TIME_FIELDS and isinstance(v, int | float) else v
        for k, v in payload.items()
    }
    return fields(shown, width)
