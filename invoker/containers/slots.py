"""One record per container, in one table every part reads.

A `Slot` is everything known of one container: the pool's state for it (what it serves,
calls in it, keep-alive), the node placement put it on, the driver's handle once it is up,
and how loading it went. The pool's pure decisions write the pool's fields; the invoker
writes the rest as it starts, loads and runs the container. Nothing mirrors the table: a
container enters it when the pool books it and leaves it when the pool is told it is gone.
"""

from __future__ import annotations

import asyncio
import enum
from bisect import insort
from dataclasses import dataclass, field

from invoker.api import FunctionSpec
from invoker.drivers.base import ContainerHandle

FunctionKey = tuple[str, str, int]  # (tenant, name, version)


class State(enum.Enum):
    """Where a container is in its life."""

    PREWARM = "prewarm"
    INITIALIZING = "initializing"
    IDLE = "idle"
    BUSY = "busy"
    REMOVING = "removing"


class Failure(enum.Enum):
    """Whose fault a container that could not serve its calls was."""

    FUNCTION = "function"  # its code did not load: the tenant's to fix
    PLATFORM = "platform"  # starting or loading failed on our side
    NO_CAPACITY = "no_capacity"  # no node could take it now: the caller may retry


@dataclass
class Slot:
    """One container: the pool's books on it, where it runs, and how loading it went."""

    id: str
    runtime: str
    memory_mb: int
    state: State
    created: float
    # The pool's books: its decisions read and write these, and nothing else here.
    key: FunctionKey | None = None  # None while a stem cell; changed by `SlotTable.rekey` only
    tenant: str | None = None
    concurrency: int = 1
    in_flight: int = 0
    reserved: int = 0  # calls promised to this slot while it initializes
    last_used: float = 0.0
    idle_until: float | None = None  # keep-alive deadline while idle
    retired: bool = False  # its function changed or went away: no new calls
    # Where and what: placement, the driver, the function it was loaded with.
    node: str | None = None  # the node its resources are booked on (None: not placed)
    handle: ContainerHandle | None = None  # None until the driver has started it
    spec: FunctionSpec | None = None  # None while a stem cell
    # Loading and running.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    init_failure: Failure | None = None
    init_error: str | None = None  # for FUNCTION: the tenant's text; else the operator's
    init_ms: float = 0.0
    init_bytes: int = 0  # the code /init sent it (what a stateless migration moves)
    running: int = 0  # calls inside the container now; at 0 it is frozen
    seq: int = field(default=0, repr=False, compare=False)  # its place in the table's order

    @property
    def free(self) -> int:
        """Calls it could take now (or once initialized)."""
        return self.concurrency - self.in_flight - self.reserved

    def failed(self, failure: Failure, error: str) -> None:
        """Mark the container unable to serve, and why."""
        self.init_failure = failure
        self.init_error = error


class SlotTable:
    """Every container of one invoker, by id, and the views the pool decides on."""

    def __init__(self) -> None:
        self._slots: dict[str, Slot] = {}
        # Each function's slots in table order: a call looks at its function's containers
        # only, not at every container. `rekey` is the one way a slot's key changes.
        self._by_key: dict[FunctionKey, list[Slot]] = {}
        self._added = 0

    def __getitem__(self, slot_id: str) -> Slot:
        return self._slots[slot_id]

    def __contains__(self, slot_id: object) -> bool:
        return slot_id in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, slot_id: str) -> Slot | None:
        """The slot, or None when there is no such container (any more)."""
        return self._slots.get(slot_id)

    def values(self) -> list[Slot]:
        """Every slot, in the order they were added."""
        return list(self._slots.values())

    def add(self, slot: Slot) -> Slot:
        """Book a new container."""
        if slot.id in self._slots:
            raise ValueError(f"container {slot.id} is already in the table")
        self._added += 1
        slot.seq = self._added
        self._slots[slot.id] = slot
        if slot.key is not None:
            self._by_key.setdefault(slot.key, []).append(slot)
        return slot

    def rekey(self, slot: Slot, key: FunctionKey) -> None:
        """`slot` serves `key` from now on (a stem cell specialised, a container adopted
        or carried over to a new version)."""
        self._unindex(slot)
        slot.key = key
        if slot.id in self._slots:
            insort(self._by_key.setdefault(key, []), slot, key=lambda s: s.seq)

    def _unindex(self, slot: Slot) -> None:
        if slot.key is None:
            return
        same = self._by_key.get(slot.key, [])
        for i, other in enumerate(same):
            if other is slot:
                del same[i]
                if not same:
                    del self._by_key[slot.key]
                return

    def pop(self, slot_id: str) -> Slot | None:
        """Drop a container that is gone; returns its slot (None if it was not here)."""
        slot = self._slots.pop(slot_id, None)
        if slot is not None:
            self._unindex(slot)
        return slot

    def clear(self) -> list[Slot]:
        """Drop every container; returns their slots."""
        everything = list(self._slots.values())
        self._slots.clear()
        self._by_key.clear()
        return everything

    # ---- views ----

    def of(self, key: FunctionKey) -> list[Slot]:
        """The function's live containers."""
        return [s for s in self._by_key.get(key, ()) if s.state is not State.REMOVING]

    def memory_used(self) -> int:
        """Memory held by every container that is not being removed."""
        return sum(s.memory_mb for s in self._slots.values() if s.state is not State.REMOVING)

    def stems(self, runtime: str, memory_mb: int) -> list[Slot]:
        """Ready stem cells of a runtime and size."""
        return [
            s
            for s in self._slots.values()
            if s.state is State.PREWARM
            and not s.retired
            and s.runtime == runtime
            and s.memory_mb == memory_mb
        ]

    def counts(self) -> dict[str, int]:
        """Containers by state (for metrics)."""
        out = {state.value: 0 for state in State}
        for s in self._slots.values():
            out[s.state.value] += 1
        return out

    def loaded(self, tenant: str | None = None, name: str | None = None) -> list[Slot]:
        """Live containers given a function, optionally only a tenant's, or one function's."""
        return [
            s
            for s in self._slots.values()
            if s.spec is not None
            and s.state is not State.REMOVING
            and (tenant is None or s.spec.tenant == tenant)
            and (name is None or s.spec.name == name)
        ]
