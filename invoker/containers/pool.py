"""The container pool's decisions: a pure state machine, with time passed in.

As in OpenWhisk's ContainerPool, this module decides and the invoker acts: given a call
it answers warm (use this container), wait (one will free up sooner than a cold start
would take), cold (start one, evicting idle ones first if memory is short), or reject
(a limit is reached; retry later). It never touches Docker or the clock. Its state is
the slot table (`invoker.containers.slots`) the invoker reads too: one record per container.

Container life: prewarm (a generic stem cell) -> initializing (code being loaded) ->
idle <-> busy -> removing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from invoker.containers.in_flight import InFlight, LocalInFlight
from invoker.containers.slots import FunctionKey, Slot, SlotTable, State


@dataclass(frozen=True)
class Demand:
    """What a call needs."""

    key: FunctionKey
    runtime: str
    memory_mb: int
    concurrency: int
    stem_ok: bool  # may a generic stem cell serve it (no network, matching memory)?


@dataclass(frozen=True)
class Warm:
    slot: str


@dataclass(frozen=True)
class Specialise:
    """Take a stem cell and /init it with the function."""

    slot: str


@dataclass(frozen=True)
class Cold:
    """Start a container; first remove the idle ones listed (memory pressure).

    The call is counted in flight from the decision on: its caller starts the container
    (`Pool.starting`) at once, with no await between.
    """

    evict: tuple[str, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Wait up to `seconds` for a container of the function to free up, then ask again."""

    seconds: float


@dataclass(frozen=True)
class Reject:
    """A limit is reached: answer 429 with Retry-After."""

    reason: str
    retry_after_s: float


Decision = Warm | Specialise | Cold | Wait | Reject
_NOT_TAKEN = (Wait, Reject)  # decisions that give no container: the call is not counted


@dataclass(frozen=True)
class PoolLimits:
    """Bounds the pool keeps."""

    memory_mb: int = 8192  # what all containers together may hold
    max_per_function: int = 32
    max_in_flight_per_tenant: int = 100
    max_wait_s: float = 5.0  # longest bounded wait for a busy container
    default_cold_start_s: float = 0.5  # until measured


@dataclass
class _Stats:
    """Running means (exponentially weighted) that the wait-or-cold choice needs."""

    duration_s: dict[FunctionKey, float] = field(default_factory=dict)
    cold_start_s: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def _ewma(old: float | None, new: float, alpha: float = 0.2) -> float:
        return new if old is None else (1 - alpha) * old + alpha * new


class Pool:
    """The decisions over the slot table, and the counts they need. Single-threaded; no I/O.

    The pool alone adds slots to the table and takes them out; it writes only their
    pool fields (state, function, calls, keep-alive).
    """

    def __init__(self, limits: PoolLimits, slots: SlotTable | None = None) -> None:
        self.limits = limits
        self.slots = slots if slots is not None else SlotTable()
        self._stats = _Stats()
        self._in_flight: InFlight = LocalInFlight()
        self.tenant_caps: dict[str, int] = {}  # per-tenant in-flight limits an admin set
        self._waiting: dict[FunctionKey, int] = {}

    def count_in_flight_in(self, in_flight: InFlight) -> None:
        """Count tenants' calls in flight in `in_flight` (before any call): a worker of
        `nimbus serve --workers N` holds each tenant's cap with the other workers."""
        self._in_flight = in_flight

    def tenant_in_flight(self, tenant: str) -> int:
        """Calls of the tenant the pool has given a container and not yet seen end."""
        return self._in_flight.mine(tenant)

    # ---- the decision ----

    def decide(self, demand: Demand, now: float) -> Decision:
        """Where the next call of `demand.key` runs. Commits a Warm/Specialise/Cold choice:
        the call counts against its tenant's cap until `released` or `abandoned`."""
        tenant = demand.key[0]
        cap = self.tenant_caps.get(tenant, self.limits.max_in_flight_per_tenant)
        # Counted first and given back unless a container is chosen: with several workers
        # the check and the count are one step, so two workers never both take the last one.
        if not self._in_flight.admit(tenant, cap):
            return Reject("tenant in-flight quota reached", retry_after_s=1.0)
        decision = self._choose(demand, tenant, now)
        if isinstance(decision, _NOT_TAKEN):
            self._in_flight.done(tenant)
        return decision

    def _choose(self, demand: Demand, tenant: str, now: float) -> Decision:
        live = self.slots.of(demand.key)
        # One pass, as every call takes it: the most recently used container with room
        # (the others stay idle long enough to expire), else the first one starting with
        # room (coalesce onto it).
        idle, busy, initializing = State.IDLE, State.BUSY, State.INITIALIZING
        best: Slot | None = None
        best_used = 0.0
        starting: Slot | None = None
        for s in live:
            if s.retired or s.concurrency - s.in_flight - s.reserved <= 0:  # `free`, inline
                continue
            state = s.state
            if state is idle or state is busy:
                used = s.last_used
                if best is None or used > best_used or (used == best_used and s.id > best.id):
                    best, best_used = s, used
            elif state is initializing and starting is None:
                starting = s
        if best is None:
            best = starting
        if best is not None:
            self._take(best, now)
            return Warm(best.id)
        mine = [s for s in live if not s.retired]
        if demand.stem_ok:
            stems = self.slots.stems(demand.runtime, demand.memory_mb)
            if stems:
                stem = min(stems, key=lambda s: (s.created, s.id))
                self.slots.rekey(stem, demand.key)
                stem.tenant, stem.concurrency = tenant, demand.concurrency
                stem.state = State.INITIALIZING
                self._take(stem, now)
                return Specialise(stem.id)
        wait = self._expected_wait(demand.key, mine, now)
        cold = self._stats.cold_start_s.get(demand.runtime, self.limits.default_cold_start_s)
        at_limit = len(mine) >= self.limits.max_per_function
        if at_limit:
            if wait is not None and wait > self.limits.max_wait_s:
                return Reject("function container limit reached", retry_after_s=1.0)
            # Unmeasured so far: wait (the caller is woken as soon as a container frees up).
            return Wait(self.limits.max_wait_s if wait is None else max(wait, 0.005))
        if wait is not None and wait < cold:
            return Wait(max(wait, 0.005))
        evict = self._evictions(demand.memory_mb)
        if evict is None:
            if wait is not None and wait <= self.limits.max_wait_s:
                return Wait(max(wait, 0.005))
            return Reject("no memory for another container", retry_after_s=1.0)
        return Cold(tuple(evict))

    def _expected_wait(self, key: FunctionKey, mine: list[Slot], now: float) -> float | None:
        """Seconds until one of the function's busy or initializing containers frees up."""
        if not mine:
            return None
        duration = self._stats.duration_s.get(key)
        if duration is None:
            return None  # nothing measured yet: a cold start is the only honest estimate
        waiting = self._waiting.get(key, 0)
        # Each container frees a slot about every `duration`; queued callers go first.
        per_slot = duration / max(1, sum(s.concurrency for s in mine))
        return per_slot * (waiting + 1)

    def _evictions(self, memory_mb: int) -> list[str] | None:
        """Idle containers to remove (oldest idle first) so `memory_mb` fits; None if it can't."""
        short = self.slots.memory_used() + memory_mb - self.limits.memory_mb
        if short <= 0:
            return []
        idle = sorted(
            (s for s in self.slots.values() if s.state in (State.IDLE, State.PREWARM)),
            key=lambda s: (s.state is not State.PREWARM, s.last_used, s.id),
        )
        chosen: list[str] = []
        for s in idle:
            if short <= 0:
                break
            chosen.append(s.id)
            short -= s.memory_mb
        return chosen if short <= 0 else None

    def _take(self, slot: Slot, now: float) -> None:
        if slot.state is State.INITIALIZING:
            slot.reserved += 1
        else:
            slot.in_flight += 1
            slot.state = State.BUSY
            slot.idle_until = None
        slot.last_used = now

    # ---- events the invoker reports ----

    def waiting(self, key: FunctionKey, delta: int) -> None:
        """A caller starts (+1) or stops (-1) waiting for the function."""
        self._waiting[key] = max(0, self._waiting.get(key, 0) + delta)

    def starting(
        self, slot_id: str, demand: Demand | None, runtime: str, memory_mb: int, now: float
    ) -> Slot:
        """A container is being created: for `demand` (reserved for the call its Cold decision
        counted) or as a stem cell."""
        # A stem cell is INITIALIZING with no key until `prewarmed`: no call may take it yet.
        slot = Slot(
            id=slot_id,
            runtime=runtime,
            memory_mb=memory_mb,
            state=State.INITIALIZING,
            created=now,
            last_used=now,
        )
        self.slots.add(slot)
        if demand is not None:
            self.slots.rekey(slot, demand.key)
            slot.tenant, slot.concurrency = demand.key[0], demand.concurrency
            self._take(slot, now)
        return slot

    def starting_for(self, slot_id: str, demand: Demand, now: float) -> Slot:
        """A container is being started for a function ahead of its calls (a pre-warm)."""
        slot = self.starting(slot_id, None, demand.runtime, demand.memory_mb, now)
        self.slots.rekey(slot, demand.key)
        slot.tenant, slot.concurrency = demand.key[0], demand.concurrency
        return slot

    def adopt(self, slot_id: str, demand: Demand) -> bool:
        """A replacement a migration started takes the function's calls from now on; False
        when it is gone (or not ready)."""
        slot = self.slots.get(slot_id)
        if slot is None or slot.state not in (State.IDLE, State.BUSY):
            return False
        self.slots.rekey(slot, demand.key)
        slot.tenant, slot.concurrency = demand.key[0], demand.concurrency
        slot.last_used = max(slot.last_used, *(s.last_used for s in self.slots.of(demand.key)))
        return True

    def prewarmed(self, slot_id: str) -> None:
        """A stem cell is up and may be specialised."""
        slot = self.slots.get(slot_id)
        if slot is not None and slot.key is None and slot.state is State.INITIALIZING:
            slot.state = State.PREWARM

    def initialized(
        self, slot_id: str, runtime_s: float | None = None, idle_until: float | None = None
    ) -> None:
        """/init finished: reserved calls now run; measure the cold start.

        A container initialised with no call waiting (a pre-warm) idles until `idle_until`.
        """
        slot = self.slots[slot_id]
        slot.in_flight += slot.reserved
        slot.reserved = 0
        slot.state = State.BUSY if slot.in_flight else State.IDLE
        if slot.state is State.IDLE:
            slot.idle_until = idle_until if idle_until is not None else slot.last_used
        if runtime_s is not None:
            old = self._stats.cold_start_s.get(slot.runtime)
            self._stats.cold_start_s[slot.runtime] = _Stats._ewma(old, runtime_s)

    def released(
        self, slot_id: str, tenant: str, now: float, keep_alive_s: float, duration_s: float
    ) -> bool:
        """A call ended; the container stays warm for `keep_alive_s` once idle.

        Returns True when the container should be removed now (retired and idle).
        """
        self._in_flight.done(tenant)
        slot = self.slots.get(slot_id)
        if slot is None:
            return False
        slot.in_flight = max(0, slot.in_flight - 1)
        slot.last_used = now
        if slot.key is not None:
            old = self._stats.duration_s.get(slot.key)
            self._stats.duration_s[slot.key] = _Stats._ewma(old, duration_s)
        if slot.in_flight == 0 and slot.state is State.BUSY:
            slot.state = State.IDLE
            slot.idle_until = now + keep_alive_s
        return slot.retired and slot.state is State.IDLE

    def abandoned(self, slot_id: str, tenant: str) -> None:
        """A call given a slot did not run to a normal end there (start failed, timeout, crash)."""
        self._in_flight.done(tenant)
        slot = self.slots.get(slot_id)
        if slot is not None:
            if slot.reserved > 0:
                slot.reserved -= 1
            elif slot.in_flight > 0:
                slot.in_flight -= 1

    def removing(self, slot_ids: Iterable[str]) -> list[Slot]:
        """Mark containers for removal; returns those that were live."""
        out = []
        for slot_id in slot_ids:
            slot = self.slots.get(slot_id)
            if slot is not None and slot.state is not State.REMOVING:
                slot.state = State.REMOVING
                out.append(slot)
        return out

    def removed(self, slot_id: str) -> None:
        """The container is gone."""
        self.slots.pop(slot_id)

    # ---- background decisions ----

    def expired(self, now: float) -> list[str]:
        """Idle containers whose keep-alive ran out. Busy ones never expire."""
        return sorted(
            s.id
            for s in self.slots.values()
            if s.state is State.IDLE and s.idle_until is not None and s.idle_until <= now
        )

    def retire(self, tenant: str, name: str, keep: Collection[str] = ()) -> list[str]:
        """A function changed or went away: no new calls; returns the idle ids to remove now.

        Busy ones finish their calls first (`released` then says to remove them); those in
        `keep` (carried over to the new version) stay.
        """
        now_ids = []
        for s in self.slots.values():
            if s.id in keep:
                continue
            if s.key is not None and s.key[0] == tenant and s.key[1] == name:
                s.retired = True
                if s.state is State.IDLE:
                    now_ids.append(s.id)
        return sorted(now_ids)

    def retire_ids(self, slot_ids: Iterable[str]) -> list[str]:
        """These containers take no new calls (their node drains); returns the idle ones."""
        idle = []
        for slot_id in slot_ids:
            slot = self.slots.get(slot_id)
            if slot is None or slot.state is State.REMOVING:
                continue
            slot.retired = True
            if slot.state in (State.IDLE, State.PREWARM):
                idle.append(slot_id)
        return sorted(idle)

    def stem_deficit(self, wanted: dict[tuple[str, int], int]) -> list[tuple[str, int]]:
        """Stem cells to start so each (runtime, memory) has its wanted count, memory allowing."""
        out: list[tuple[str, int]] = []
        room = self.limits.memory_mb - self.slots.memory_used()
        for (runtime, memory_mb), count in sorted(wanted.items()):
            have = sum(
                1
                for s in self.slots.values()
                if s.key is None
                and s.runtime == runtime
                and s.memory_mb == memory_mb
                and s.state in (State.PREWARM, State.INITIALIZING)
            )
            for _ in range(max(0, count - have)):
                if room < memory_mb:
                    return out
                out.append((runtime, memory_mb))
                room -= memory_mb
        return out
