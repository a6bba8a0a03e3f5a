"""Hot-spot mitigation at run time: which nodes are hot, and which containers move where.

Pure: no I/O, time passed in. Two halves:

- detection (`track`): a node becomes hot when its pressure (measured use / capacity in its
  fullest dimension: CPU from its cgroup's CPU time, memory in use) stays above
  `hot_above` for `window_s`; it is cool again only once it stays below `cool_below` for
  `cool_window_s`. Between the two thresholds nothing changes (hysteresis), so a node
  hovering at the threshold does not flap.
- mitigation (`plan_mitigation`), answering the lecture's three questions for each hot node:
  which containers: the movable ones that contribute most to the hot dimensions first,
  until the node is projected below `cool_below`; where: the least loaded ready node that
  fits and stays at or below `cool_below` with the container (so a move never makes a
  receiver hot); at what cost: `migration.estimate_cost` per move (no downtime: moves are
  make-before-break; the init on the target; the image copy if it is missing there).

Why it does not oscillate: a receiver ends at most at `cool_below`, below the hot
threshold, so no move alone can make it hot; a moved container stays put for
`min_residence_s` and is never sent back to the node it came from.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from invoker.nodes.migration import (
    Movable,
    Move,
    MoveCost,
    NodeLoad,
    choose_target,
    estimate_cost,
    total_cost,
)
from invoker.nodes.placement import PlacementLimits


@dataclass(frozen=True)
class HotSpotConfig:
    """Thresholds and windows. Defaults and why:

    - `hot_above` 0.85: above it a CPU-bound neighbour's p99 degrades visibly, and memory is
      close to where the kernel starts reclaiming.
    - `cool_below` 0.70: 15 points under, so one container's burst does not flip a node back.
    - `window_s` 30 s: longer than a burst of calls, short against the minutes a migration
      saves; `cool_window_s` 10 s: cooling down is cheap to believe, not to act on.
    - `min_residence_s` 300 s: a moved container stays at least five minutes.
    """

    hot_above: float = 0.85
    cool_below: float = 0.70
    window_s: float = 30.0
    cool_window_s: float = 10.0
    min_residence_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0.0 < self.cool_below < self.hot_above <= 1.0:
            raise ValueError("need 0 < cool_below < hot_above <= 1")
        if not (self.window_s >= 0 and self.cool_window_s >= 0 and self.min_residence_s >= 0):
            raise ValueError("windows must be >= 0")


@dataclass(frozen=True)
class Heat:
    """A node's hot-spot state: hot or not, and since when it has been above / below."""

    hot: bool = False
    above_since: float | None = None
    below_since: float | None = None
    pressure: float = 0.0


def track(heat: Heat | None, pressure: float, now: float, config: HotSpotConfig) -> Heat:
    """The node's state after one pressure sample (a fraction; above 1 is allowed)."""
    heat = heat or Heat()
    above_since = (
        (heat.above_since if heat.above_since is not None else now)
        if pressure > config.hot_above
        else None
    )
    below_since = (
        (heat.below_since if heat.below_since is not None else now)
        if pressure < config.cool_below
        else None
    )
    hot = heat.hot
    if not hot and above_since is not None and now - above_since >= config.window_s:
        hot = True
    elif hot and below_since is not None and now - below_since >= config.cool_window_s:
        hot = False
    return Heat(hot, above_since, below_since, pressure)


@dataclass(frozen=True)
class Mitigation:
    """What to do about one hot node: the moves, and its pressure before and projected after."""

    node: str
    moves: tuple[Move, ...]
    pressure_before: float
    pressure_after: float
    resolved: bool

    @property
    def cost(self) -> MoveCost:
        """The estimated cost of all its moves."""
        return total_cost(m.cost for m in self.moves)


def _contribution(m: Movable, node: NodeLoad, threshold: float) -> float:
    """How much of the node's pressure above `threshold` the container causes."""
    out = 0.0
    for used, own, cap in zip(node.load, m.load, node.capacity, strict=True):
        if cap > 0 and used / cap > threshold:
            out += own / cap
    return out


def _may_move(m: Movable, now: float, config: HotSpotConfig) -> bool:
    recent = m.moved_at is not None and now - m.moved_at < config.min_residence_s
    return m.movable and not recent


def plan_mitigation(
    hot: Collection[str],
    nodes: Sequence[NodeLoad],
    containers: Sequence[Movable],
    now: float,
    config: HotSpotConfig | None = None,
    limits: PlacementLimits | None = None,
) -> list[Mitigation]:
    """The moves that bring each hot node in `hot` under `cool_below`, hottest node first.

    Each container is considered once, so planning ends after at most one pass over them. A
    node that cannot be brought down fully still sheds what it can (`resolved` False).
    """
    config = config or HotSpotConfig()
    pool = {n.id: n for n in nodes}
    out: list[Mitigation] = []
    sources = sorted((pool[h] for h in hot if h in pool), key=lambda n: (-n.pressure(), n.id))
    for start in sources:
        node = start
        mine = [c for c in containers if c.node == node.id and _may_move(c, now, config)]
        ranked = sorted(
            ((_contribution(c, node, config.cool_below), c) for c in mine),
            key=lambda pc: (-pc[0], pc[1].id),
        )
        moves: list[Move] = []
        for share, c in ranked:
            if node.pressure() <= config.cool_below:
                break
            if share <= 0:
                break  # the rest do not load the hot dimensions: moving them cannot help
            target = choose_target(
                c, list(pool.values()), limits, ceiling=config.cool_below, exclude=hot
            )
            if target is None:
                continue
            moves.append(Move(c.id, node.id, target.id, estimate_cost(c, target)))
            node = node.minus(c.demand, c.load)
            pool[node.id] = node
            pool[target.id] = target.plus(c.demand, c.load, c.image)
        after = node.pressure()
        out.append(
            Mitigation(start.id, tuple(moves), start.pressure(), after, after <= config.cool_below)
        )
    return out


def moved(c: Movable, move: Move, now: float) -> Movable:
    """The container as it is after `move` ran: on the target, remembering where it was."""
    return replace(c, node=move.target, came_from=move.source, moved_at=now)
