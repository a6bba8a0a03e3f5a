"""How the node pool grows and shrinks: the autoscaler's pure decisions (time passed in, no I/O).

Scale-out for pending demand, scale-in (which nodes consolidation can drain), release of
drained nodes, and the pool as an offline packing problem for the consolidation planner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from invoker.nodes.model import Flavor, Node
from invoker.nodes.placement import (
    BestFit,
    FirstFit,
    NodeState,
    NodeView,
    PlacementLimits,
    Vector,
    vadd,
    vsum,
)


def _biggest_first(v: Vector) -> tuple[float, ...]:
    # Memory first: it is the dimension that is never overcommitted.
    return tuple(-x for x in reversed(v))


def _pack_onto(
    demands: Sequence[Vector], views: list[NodeView], limits: PlacementLimits
) -> list[Vector]:
    """First-fit `demands` (biggest first) onto `views`, updating them; returns the leftovers."""
    first_fit = FirstFit(limits)
    index = {v.id: k for k, v in enumerate(views)}
    left: list[Vector] = []
    for d in sorted(demands, key=_biggest_first):
        chosen = first_fit.place(d, views)
        if chosen is None:
            left.append(d)
            continue
        k = index[chosen]
        views[k] = NodeView(chosen, views[k].capacity, vadd(views[k].allocated, d))
    return left


def _nodes_needed(demands: Sequence[Vector], flavor: Flavor, limits: PlacementLimits) -> int:
    views: list[NodeView] = []
    left = list(demands)
    while left:
        views.append(NodeView(f"new-{len(views)}", flavor.capacity, (0.0, 0)))
        left = _pack_onto(left, views, limits)
    return len(views)


def decide_scale_out(
    pending_demands: Sequence[Vector],
    nodes: Sequence[Node],
    flavors: Sequence[Flavor],
    min_nodes: int,
    max_nodes: int,
    provisioning_in_flight: Sequence[Flavor] = (),
    limits: PlacementLimits | None = None,
) -> list[Flavor]:
    """The VMs to provision now.

    `pending_demands` are containers the placement policy could not put on any ready node; the
    ready nodes are not second-guessed. Nodes still provisioning (in `nodes`) and provision
    calls issued but not yet listed (`provisioning_in_flight`) will come up empty-ish, so they
    absorb pending demand first. What is left is packed onto new VMs of the single flavor that
    holds it most cheaply (ties: the earlier flavor). The pool is topped up to `min_nodes` with
    `flavors[0]`, and never grows past `max_nodes`, in-flight provisioning included. A demand no
    flavor can hold is ignored here (the caller rejects it).
    """
    limits = limits or PlacementLimits()
    if not flavors:
        return []
    live = [n for n in nodes if n.state is not NodeState.RELEASED]
    room = max_nodes - len(live) - len(provisioning_in_flight)
    if room <= 0:
        return []
    coming = [
        NodeView(n.id, n.capacity, n.allocated) for n in live if n.state is NodeState.PROVISIONING
    ]
    coming += [
        NodeView(f"in-flight-{k}", f.capacity, (0.0, 0))
        for k, f in enumerate(provisioning_in_flight)
    ]
    holdable = [
        d
        for d in pending_demands
        if any(limits.fits(d, NodeView("probe", f.capacity, (0.0, 0))) for f in flavors)
    ]
    left = _pack_onto(holdable, coming, limits)
    out: list[Flavor] = []
    if left:
        best: tuple[float, int, Flavor] | None = None
        for f in flavors:
            if not all(limits.fits(d, NodeView("probe", f.capacity, (0.0, 0))) for d in left):
                continue
            count = _nodes_needed(left, f, limits)
            if best is None or count * f.price_per_hour < best[0]:
                best = (count * f.price_per_hour, count, f)
        if best is None:
            # No single flavor holds every leftover: use, for each, the first flavor that does.
            for d in left:
                for f in flavors:
                    if limits.fits(d, NodeView("probe", f.capacity, (0.0, 0))):
                        out.append(f)
                        break
        else:
            out = [best[2]] * best[1]
    shortfall = min_nodes - len(live) - len(provisioning_in_flight) - len(out)
    out += [flavors[0]] * max(0, shortfall)
    return out[:room]


def decide_scale_in(
    nodes: Sequence[Node],
    now: float,
    *,
    min_nodes: int = 0,
    utilisation_below: float = 0.5,
    min_ready_s: float = 0.0,
    max_drains: int | None = None,
    headroom: float = 0.0,
    limits: PlacementLimits | None = None,
) -> list[str]:
    """Ready nodes to drain: under-used ones whose containers all fit on the nodes that stay.

    Candidates are ready nodes at least `min_ready_s` old whose utilisation (allocated / limit
    in the fullest dimension) is below `utilisation_below`, least used first. A candidate is
    chosen only if every allocation on it can be re-placed (best fit) on the remaining ready
    nodes, counting what earlier choices already moved there; at least `min_nodes` ready nodes
    stay, and in every dimension at least `headroom` (a fraction) of the remaining nodes' limit
    stays free, so a burst does not have to wait for a VM to boot. A node with allocations that
    fit nowhere else is never chosen.
    """
    limits = limits or PlacementLimits()
    ready = [n for n in nodes if n.state is NodeState.READY]
    keep = {n.id: n.view() for n in ready}
    order = sorted(
        (
            n
            for n in ready
            if n.ready_at is not None
            and now - n.ready_at >= min_ready_s
            and limits.utilisation(n.view()) < utilisation_below
        ),
        key=lambda n: (limits.utilisation(n.view()), len(n.allocations), n.id),
    )
    best_fit = BestFit(limits)
    chosen: list[str] = []
    receivers: set[str] = set()  # took containers from a chosen node: they must stay
    for node in order:
        if max_drains is not None and len(chosen) >= max_drains:
            break
        if len(keep) - 1 < min_nodes:
            break
        if node.id in receivers:
            continue
        views = [v for k, v in keep.items() if k != node.id]
        # Cheap rejection first: the others' total free room must hold the node's total.
        room = vsum(
            [
                tuple(c - a for c, a in zip(limits.limit(v.capacity), v.allocated, strict=True))
                for v in views
            ],
            len(node.capacity),
        )
        if not all(r >= a for r, a in zip(room, node.allocated, strict=True)):
            continue
        index = {v.id: k for k, v in enumerate(views)}
        ok = True
        targets: set[str] = set()
        for demand in sorted(node.allocations.values(), key=_biggest_first):
            target = best_fit.place(demand, views)
            if target is None:
                ok = False
                break
            targets.add(target)
            k = index[target]
            views[k] = NodeView(target, views[k].capacity, vadd(views[k].allocated, demand))
        if ok and headroom > 0.0:
            limit = vsum([limits.limit(v.capacity) for v in views], len(node.capacity))
            used = vsum([v.allocated for v in views], len(node.capacity))
            ok = all(u <= (1.0 - headroom) * c for u, c in zip(used, limit, strict=True))
        if ok:
            keep = {v.id: v for v in views}
            chosen.append(node.id)
            receivers |= targets
    return chosen


MILLI = 1000  # vCPU to integer millicores: the offline planner packs exact integers


def packing_problem(
    nodes: Sequence[Node], limits: PlacementLimits
) -> tuple[list[Vector], Vector] | None:
    """The ready nodes' allocations as an offline packing instance: (items, bin capacity).

    Integer sizes (vCPU in millicores, rounded up), as the offline planner needs; a bin is
    a node's placeable limit. Its bin count is a target for the pool: ready nodes beyond
    it are slack that consolidation can drain. None when the ready nodes differ in size
    (the planner packs one bin size).
    """
    ready = [n for n in nodes if n.state is NodeState.READY]
    if not ready or len({n.capacity for n in ready}) != 1:
        return None
    vcpu, memory = limits.limit(ready[0].capacity)
    capacity = (int(vcpu * MILLI), int(memory))
    items: list[Vector] = [
        (
            min(capacity[0], math.ceil(round(d[0] * MILLI, 6))),
            min(capacity[1], math.ceil(d[1])),
        )
        for n in ready
        for d in n.allocations.values()
    ]
    return items, capacity


def decide_release(nodes: Sequence[Node]) -> list[str]:
    """Draining nodes with nothing left on them: release these."""
    return [n.id for n in nodes if n.state is NodeState.DRAINING and not n.allocations]
