"""The pool's warm choice, made in one pass, is the choice the list-building form made.

`Pool._choose` runs on every call; it now finds the most recently used container with room
(else the first one starting with room) in one loop. `_ListPool` below keeps the form it
replaced. On any table of containers both decide the same and leave the same books.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.containers.pool import Decision, Demand, Pool, PoolLimits, Specialise, Warm
from invoker.containers.slots import Slot, SlotTable, State

KEY = ("t", "f", 1)
OTHER = ("t", "g", 1)


class _ListPool(Pool):
    """The warm choice as it was: lists of the function's containers, then `max`."""

    def _choose(self, demand: Demand, tenant: str, now: float) -> Decision:
        mine = [s for s in self.slots.of(demand.key) if not s.retired]
        ready = [s for s in mine if s.state in (State.IDLE, State.BUSY) and s.free > 0]
        if ready:
            best = max(ready, key=lambda s: (s.last_used, s.id))
            self._take(best, now)
            return Warm(best.id)
        starting = [s for s in mine if s.state is State.INITIALIZING and s.free > 0]
        if starting:
            self._take(starting[0], now)
            return Warm(starting[0].id)
        # Past the warm choice both forms run the same code.
        return super()._choose(demand, tenant, now)


slot_specs = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from([KEY, KEY, KEY, OTHER, None]),
            "state": st.sampled_from(list(State)),
            "concurrency": st.integers(1, 3),
            "in_flight": st.integers(0, 3),
            "reserved": st.integers(0, 1),
            "last_used": st.sampled_from([0.0, 5.0, 7.5, 9.0]),  # ties are common
            "retired": st.booleans(),
        }
    ),
    max_size=12,
)


def _table(specs: list[dict[str, Any]]) -> SlotTable:
    table = SlotTable()
    # Ids not in table order, so neither order stands in for the other.
    for i, spec in enumerate(specs):
        slot_id = f"s{(i * 7) % 13:02d}-{i}"
        table.add(Slot(id=slot_id, runtime="python:3.11", memory_mb=128, created=float(i), **spec))
    return table


def _books(table: SlotTable) -> list[tuple[Any, ...]]:
    return [
        (s.id, s.key, s.state, s.in_flight, s.reserved, s.last_used, s.idle_until)
        for s in table.values()
    ]


@settings(max_examples=800, deadline=None)
@given(specs=slot_specs, stem_ok=st.booleans(), calls=st.integers(1, 4))
def test_one_pass_choice_is_the_list_choice(
    specs: list[dict[str, Any]], stem_ok: bool, calls: int
) -> None:
    demand = Demand(KEY, "python:3.11", 128, 1, stem_ok)
    limits = PoolLimits(memory_mb=1024, max_per_function=4)
    fast, plain = Pool(limits, _table(specs)), _ListPool(limits, _table(specs))
    for n in range(calls):  # each choice changes the books the next one sees
        now = 10.0 + n
        assert fast.decide(demand, now) == plain.decide(demand, now)
        assert _books(fast.slots) == _books(plain.slots)


def test_the_most_recently_used_container_with_room_serves_and_a_stem_cell_only_after() -> None:
    table = SlotTable()
    for slot_id, last_used, state, calls in (
        ("a", 3.0, State.IDLE, 0),
        ("b", 8.0, State.IDLE, 0),
        ("c", 8.0, State.BUSY, 1),  # as recent as b, and a later id: but it has no room
        ("s", 0.0, State.PREWARM, 0),
    ):
        key = None if state is State.PREWARM else KEY
        slot = Slot(slot_id, "python:3.11", 128, state, 0.0, key=key, last_used=last_used)
        slot.in_flight = calls
        table.add(slot)
    pool = Pool(PoolLimits(), table)
    demand = Demand(KEY, "python:3.11", 128, 1, True)
    assert pool.decide(demand, 10.0) == Warm("b")
    assert pool.decide(demand, 11.0) == Warm("a")
    assert pool.decide(demand, 12.0) == Specialise("s")
