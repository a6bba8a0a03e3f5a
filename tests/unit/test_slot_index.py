"""A function's containers come from the table's index by function, in table order: the
same list a walk over every container gives, whatever was added, re-keyed or removed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from invoker.containers.slots import Slot, SlotTable, State

KEYS = [("t", "f", 1), ("t", "f", 2), ("t", "g", 1)]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from([*KEYS, None]), st.sampled_from(list(State))),
        st.tuples(st.just("rekey"), st.integers(0, 30), st.sampled_from(KEYS)),
        st.tuples(st.just("pop"), st.integers(0, 30), st.none()),
        st.tuples(st.just("state"), st.integers(0, 30), st.sampled_from(list(State))),
    ),
    max_size=60,
)


def _walk(table: SlotTable, key: tuple[str, str, int]) -> list[Slot]:
    return [s for s in table.values() if s.key == key and s.state is not State.REMOVING]


@settings(max_examples=400, deadline=None)
@given(ops=ops)
def test_a_functions_containers_are_the_walks(ops: list[tuple[str, object, object]]) -> None:
    table, made = SlotTable(), 0
    for op, a, b in ops:
        live = table.values()
        if op == "add":
            made += 1
            table.add(Slot(f"c{made}", "python:3.11", 128, b, float(made), key=a))  # type: ignore[arg-type]
        elif live and op == "rekey":
            table.rekey(live[int(a) % len(live)], b)  # type: ignore[arg-type, call-overload]
        elif live and op == "pop":
            table.pop(live[int(a) % len(live)].id)  # type: ignore[call-overload]
        elif live and op == "state":
            live[int(a) % len(live)].state = b  # type: ignore[assignment, call-overload]
        for key in KEYS:
            assert [s.id for s in table.of(key)] == [s.id for s in _walk(table, key)]
    table.clear()
    assert all(table.of(key) == [] for key in KEYS)
