"""Migration plans (make-before-break steps, draining a node) and the migration record."""

from __future__ import annotations

import json

from invoker.nodes.migration import (
    MigrationRecord,
    MigrationState,
    Movable,
    Move,
    MoveCost,
    NodeLoad,
    StepKind,
    choose_target,
    migrations_json,
    phased,
    plan_drain,
    steps_for,
)
from invoker.nodes.placement import NodeState, PlacementLimits

ORDER = [StepKind.START_TARGET, StepKind.ROUTE, StepKind.WAIT_IN_FLIGHT, StepKind.REMOVE_SOURCE]


def empty(nid: str, memory_mb: int = 4096, state: NodeState = NodeState.READY) -> NodeLoad:
    return NodeLoad(nid, (4.0, memory_mb), (0.0, 0), (0.0, 0), state)


def box(cid: str, memory_mb: int, cpu: float = 0.1, image: str = "") -> Movable:
    return Movable(cid, "src", (0.25, memory_mb), (cpu, memory_mb), image, 10_000, 0.3)


def test_one_container_is_make_before_break() -> None:
    steps = steps_for(Move("c1", "a", "b", MoveCost()))
    assert [s.kind for s in steps] == ORDER
    assert {(s.container, s.source, s.target) for s in steps} == {("c1", "a", "b")}


def test_a_drain_starts_every_replacement_before_routing_any() -> None:
    moves = [Move(f"c{k}", "a", "b", MoveCost()) for k in range(3)]
    steps = phased(moves)
    assert [s.kind for s in steps] == [k for k in ORDER for _ in range(3)]
    for k in range(3):
        mine = [s.kind for s in steps if s.container == f"c{k}"]
        assert mine == ORDER


def test_drain_places_everything_it_can_counting_earlier_moves() -> None:
    containers = [box("small", 256), box("big", 3072), box("mid", 1024)]
    plan = plan_drain("src", containers, [empty("src"), empty("x"), empty("y"), empty("z", 512)])
    # Biggest first: big to x (tie broken by id), mid to y (x is fuller now); small to y
    # too: 0.31 of y's memory beats 0.5 of little z's.
    assert [(m.container, m.target) for m in plan.moves] == [
        ("big", "x"),
        ("mid", "y"),
        ("small", "y"),
    ]
    assert plan.complete and len(plan.steps) == 12
    assert all(m.source == "src" and m.cost.downtime_s == 0.0 for m in plan.moves)


def test_drain_reports_what_fits_nowhere() -> None:
    containers = [box("a", 3072), box("b", 3072)]
    plan = plan_drain(
        "src",
        containers,
        [empty("x"), empty("gone", state=NodeState.DRAINING)],
        PlacementLimits(),
    )
    assert [m.target for m in plan.moves] == ["x"]
    assert plan.unplaced == ("b",) and not plan.complete


def test_drain_honours_the_overcommit_cap_not_only_resident_memory() -> None:
    # x holds a 256 MB container deflated to 64 MB: resident memory has room for 384 MB,
    # but with no overcommit (cap 512 MB of full limits) placement would refuse it.
    x = NodeLoad("x", (2.0, 512), (0.25, 64), (0.0, 64), memory_room=512 - 256)
    plan = plan_drain("src", [box("b", 384)], [x])
    assert plan.moves == () and plan.unplaced == ("b",)
    # Each move counts against the room the next one sees.
    roomy = NodeLoad("y", (4.0, 4096), (0.0, 0), (0.0, 0), memory_room=600)
    plan = plan_drain("src", [box("c", 384), box("d", 256)], [roomy])
    assert [m.container for m in plan.moves] == ["c"] and plan.unplaced == ("d",)


def test_drain_may_send_a_container_back_where_it_came_from() -> None:
    # The drained node goes away; the no-return rule is for hot-spot moves.
    back = Movable("c", "src", (0.25, 128), (0.1, 128), came_from="x")
    assert [m.target for m in plan_drain("src", [back], [empty("x")]).moves] == ["x"]
    assert choose_target(back, [empty("x")]) is None


def test_target_respects_the_ceiling() -> None:
    m = box("c", 1024, cpu=2.0)
    warm = NodeLoad("w", (4.0, 4096), (1.0, 1024), (1.5, 1024))
    assert choose_target(m, [warm], ceiling=0.85) is None  # 3.5 / 4 = 0.875
    assert choose_target(m, [warm], ceiling=0.9) == warm


def test_image_copy_counted_only_where_missing() -> None:
    m = box("c", 128, image="fn:v1")
    holds = NodeLoad("h", (4.0, 4096), (0.0, 0), (0.0, 0), images=frozenset({"fn:v1"}))
    plan = plan_drain("src", [m], [holds])
    assert plan.moves[0].cost.bytes_moved == 0
    plan = plan_drain("src", [m], [empty("e")])
    assert plan.moves[0].cost.bytes_moved == 10_000
    assert plan.moves[0].cost.init_s == 0.3 and plan.moves[0].cost.cpu_target_s == 0.3 * 0.25


def record(rid: str, started: float, state: MigrationState, bytes_moved: int) -> MigrationRecord:
    return MigrationRecord(
        id=rid,
        function="acme/resize@3",
        container="c-1",
        source="node-a",
        target="node-b",
        reason="drain",
        started_at=started,
        replacement="c-9" if state is not MigrationState.RUNNING else None,
        finished_at=started + 1.25 if state is not MigrationState.RUNNING else None,
        state=state,
        cost=MoveCost(0.0, 0.21, 0.01, 0.18, bytes_moved),
        error="target failed to start" if state is MigrationState.FAILED else None,
    )


def test_record_json_shape() -> None:
    r = record("m1", 1_700_000_000.0, MigrationState.DONE, 42)
    body = r.to_json()
    assert body == {
        "id": "m1",
        "function": "acme/resize@3",
        "container": "c-1",
        "replacement": "c-9",
        "source": "node-a",
        "target": "node-b",
        "reason": "drain",
        "state": "done",
        "started_at": 1_700_000_000.0,
        "finished_at": 1_700_000_001.25,
        "duration_s": 1.25,
        "cost": {
            "downtime_s": 0.0,
            "init_s": 0.21,
            "cpu_source_s": 0.01,
            "cpu_target_s": 0.18,
            "bytes_moved": 42,
        },
        "error": None,
    }
    json.dumps(body)
    running = record("m2", 5.0, MigrationState.RUNNING, 0).to_json()
    assert running["duration_s"] is None and running["state"] == "running"


def test_list_is_newest_first_with_totals() -> None:
    records = [
        record("old", 10.0, MigrationState.DONE, 100),
        record("new", 30.0, MigrationState.FAILED, 7),
        record("mid", 20.0, MigrationState.DONE, 5),
    ]
    body = migrations_json(records, limit=2)
    assert [m["id"] for m in body["migrations"]] == ["new", "mid"]
    assert body["total"] == 3 and body["failed"] == 1
    assert body["bytes_moved"] == 105 and body["downtime_s"] == 0.0
    json.dumps(body)
