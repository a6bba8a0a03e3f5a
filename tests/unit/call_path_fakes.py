"""In-memory stand-ins for the invoker's I/O: a container driver, a runtime client, clocks.

`tests/unit/test_call_path*.py` drive the real `Invoker` (and the real pool, keep-alive,
replies and a real SQLite store) with these, so the call path runs in milliseconds with no
Docker. The fakes keep what a user would check: which containers exist, what each received
on /init, and in what order calls entered and left a container and it was frozen or thawed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoker.api import FunctionSpec, InvokeRequest, InvokeResult
from invoker.containers.keepalive import FixedTTL
from invoker.containers.pool import PoolLimits
from invoker.drivers.base import ContainerHandle, ContainerSpec, ContainerStats
from invoker.metering import UsageRecord
from invoker.nodes.model import Flavor
from invoker.nodes.node_pool import NodePool, NodePoolConfig
from invoker.nodes.placement import FirstFit, PlacementLimits
from invoker.providers.simulated import SimulatedProvider
from invoker.runtime_client import RunResponse
from invoker.service import Invoker, InvokerConfig
from invoker.store.base import FunctionDraft, Store
from invoker.store.factory import open_store

START_S = 0.25  # what the fake driver's create takes on the injected clock
INIT_S = 0.125  # what /init takes
RUN_S = 0.0625  # what one /run takes
USAGE = ContainerStats(peak_memory_mb=42.0, cpu_seconds=0.01)


class Clock:
    """Injected monotonic and wall clocks that move only when told (or a fake works)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Ledger:
    """What happened inside containers, in order, shared by the driver and runtime fakes."""

    events: list[tuple[str, str]] = field(default_factory=list)  # (what, address)
    inside: Counter[str] = field(default_factory=Counter)  # calls in /run, by address
    frozen: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def of(self, address: str, kinds: set[str] | None = None) -> list[str]:
        """The events of one container, optionally only some kinds."""
        return [k for k, a in self.events if a == address and (kinds is None or k in kinds)]


class FakeMeter:
    """A container's cgroup: records freeze/thaw and measures with fixed figures."""

    def __init__(self, address: str, ledger: Ledger) -> None:
        self._address = address
        self._ledger = ledger

    def start(self) -> None:
        self._ledger.events.append(("start", self._address))

    def stop(self) -> ContainerStats:
        self._ledger.events.append(("stop", self._address))
        return USAGE

    def freeze(self) -> bool:
        """As `CallMeter.freeze`: a frozen container is not written to again."""
        if self._address in self._ledger.frozen:
            return True
        if self._ledger.inside[self._address]:
            self._ledger.violations.append(f"froze {self._address} with a call inside")
        self._ledger.frozen.add(self._address)
        self._ledger.events.append(("freeze", self._address))
        return True

    def thaw(self) -> bool:
        """As `CallMeter.thaw`: only a frozen container is written to."""
        if self._address in self._ledger.frozen:
            self._ledger.frozen.discard(self._address)
            self._ledger.events.append(("thaw", self._address))
        return True


class FakeDriver:
    """A `ContainerDriver` whose containers are dict entries."""

    name = "fake"

    def __init__(self, clock: Clock, ledger: Ledger) -> None:
        self._clock = clock
        self._ledger = ledger
        self.live: dict[str, ContainerSpec] = {}  # container id -> what it was started as
        self.addresses: dict[str, str] = {}  # container id -> address
        self.created: list[str] = []
        self.destroyed: list[str] = []
        self.refuse: Exception | None = None  # raised by create when set
        self.end_reason: str | None = None  # what `ended` says
        self._meters: dict[str, FakeMeter] = {}

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        await asyncio.sleep(0)  # a real driver awaits the engine
        if self.refuse is not None:
            raise self.refuse
        self._clock.advance(START_S)
        cid = f"c{len(self.created) + 1}"
        self.created.append(cid)
        self.live[cid] = spec
        self.addresses[cid] = f"fake://{spec.name}"
        return ContainerHandle(id=cid, name=spec.name, address=self.addresses[cid], node=spec.node)

    async def destroy(self, handle: ContainerHandle) -> None:
        self.live.pop(handle.id, None)
        self.destroyed.append(handle.id)

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        return USAGE

    def call_meter(self, handle: ContainerHandle) -> Any:
        meter = self._meters.get(handle.id)
        if meter is None:
            meter = self._meters[handle.id] = FakeMeter(handle.address, self._ledger)
        return meter

    async def ended(self, handle: ContainerHandle) -> str | None:
        return self.end_reason

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        return 0

    async def close(self) -> None:
        pass

    def functions(self) -> list[str | None]:
        """The function each live container holds (None: a stem cell), sorted."""
        names = [spec.labels.get("io.nimbus.function") for spec in self.live.values()]
        return sorted(names, key=lambda n: n or "")


@dataclass
class Init:
    """One /init a container received, with the code as the container would load it."""

    address: str
    code: bytes
    binary: bool
    main: str
    env: dict[str, str]


class Gate:
    """Holds /run calls inside their container until released, one by one or all."""

    def __init__(self) -> None:
        self.calls: list[asyncio.Event] = []

    @property
    def arrived(self) -> int:
        return len(self.calls)

    def release(self, index: int) -> None:
        self.calls[index].set()


RunBehaviour = Callable[[str, dict[str, Any]], Awaitable[RunResponse]]


async def echo(address: str, payload: dict[str, Any]) -> RunResponse:
    """The default function: answers its event, with one log line."""
    body = {"result": payload["value"], "logs": ["ran"]}
    return RunResponse(200, body, len(json.dumps(body)))


class FakeRuntime:
    """Stands in for `RuntimeClient`: the methods the invoker calls, and nothing else."""

    def __init__(self, clock: Clock, ledger: Ledger) -> None:
        self._clock = clock
        self._ledger = ledger
        self.trusted: list[str] = []
        self.forgotten: list[str] = []
        self.inits: list[Init] = []
        self.init_reply = RunResponse(200, {"ok": True})
        self.on_run: RunBehaviour = echo
        self.gates: dict[str, Gate] = {}  # function name -> gate its calls wait at

    def hold(self, function: str) -> Gate:
        """Keep calls of `function` inside their container until the gate releases them."""
        gate = self.gates[function] = Gate()
        return gate

    def trust(self, address: str, token: str | None) -> None:
        self.trusted.append(address)

    def forget(self, address: str) -> None:
        self.forgotten.append(address)

    async def init(
        self,
        address: str,
        *,
        code: str | bytes,
        binary: bool,
        main: str,
        env: dict[str, str],
        timeout: float,
    ) -> RunResponse:
        await asyncio.sleep(0)
        self._clock.advance(INIT_S)
        # Raw bytes, or the text sent on the wire (base64 for a zip): what loads is the same.
        if isinstance(code, str):
            raw = base64.b64decode(code) if binary else code.encode()
        else:
            raw = code
        self.inits.append(Init(address, raw, binary, main, dict(env)))
        return self.init_reply

    async def run(self, address: str, payload: dict[str, Any], timeout: float) -> RunResponse:
        if address in self._ledger.frozen:
            self._ledger.violations.append(f"a call entered {address} while it was frozen")
        self._ledger.inside[address] += 1
        self._ledger.events.append(("enter", address))
        try:
            gate = self.gates.get(payload["function_name"])
            if gate is not None:
                event = asyncio.Event()
                gate.calls.append(event)
                await event.wait()
            self._clock.advance(RUN_S)
            return await self.on_run(address, payload)
        finally:
            self._ledger.inside[address] -= 1
            self._ledger.events.append(("exit", address))

    async def close(self) -> None:
        pass


@dataclass
class Rig:
    """An invoker over the fakes and a real SQLite store, with helpers to call it."""

    invoker: Invoker
    store: Store
    driver: FakeDriver
    runtime: FakeRuntime
    clock: Clock
    ledger: Ledger
    nodes: NodePool | None = None

    async def deploy(
        self,
        name: str,
        *,
        tenant: str = "t",
        code: bytes = b"def handler(event):\n    return event\n",
        kind: str = "source",
        memory_mb: int = 128,
        timeout_s: float = 2.0,
        concurrency: int = 1,
        network: bool = False,
    ) -> FunctionSpec:
        """Store a function as a deploy does; returns the version a call runs."""
        handler = "main.handler"
        draft = FunctionDraft(
            tenant, name, "python:3.11", handler, kind, code, memory_mb, timeout_s,
            concurrency, {"GREETING": "hi"}, network,
        )  # fmt: skip
        stored, _ = await self.store.put_function(draft, self.clock.wall())
        return stored.spec

    async def call(self, spec: FunctionSpec, args: dict[str, Any] | None = None) -> InvokeResult:
        """One synchronous call, as the gateway makes it."""
        request = InvokeRequest(uuid.uuid4().hex, spec, args if args is not None else {"n": 1})
        return await self.invoker.invoke(request)

    def start_call(
        self, spec: FunctionSpec, args: dict[str, Any] | None = None
    ) -> asyncio.Task[InvokeResult]:
        """A call running in the background (to hold it inside its container)."""
        return asyncio.create_task(self.call(spec, args))

    async def stored(self, result: InvokeResult, tenant: str = "t") -> Any:
        """The activation as the store holds it (waiting briefly for a queued write)."""
        for _ in range(200):
            found = await self.store.get_activation(tenant, result.activation_id)
            if found is not None:
                return found
            await asyncio.sleep(0.005)
        raise AssertionError(f"activation {result.activation_id} was never stored")

    async def usage(self, tenant: str = "t") -> list[UsageRecord]:
        """Every usage record of the tenant (what the bill is made of)."""
        return await self.store.list_usage(tenant, 0.0, math.inf)


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    """Wait (in real time, briefly) until `condition` holds; False when it never did."""
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.001)


@asynccontextmanager
async def rig(
    tmp_path: Path,
    *,
    limits: PoolLimits | None = None,
    stem_cells: tuple[tuple[str, int, int], ...] = (),
    keep_alive_s: float = 600.0,
    node_flavors: tuple[Flavor, ...] = (),
    max_nodes: int = 4,
) -> AsyncIterator[Rig]:
    """An invoker over fakes and a temporary SQLite store, closed afterwards; with
    `node_flavors`, its containers are placed on simulated nodes (first fit)."""
    clock, ledger = Clock(), Ledger()
    store = open_store(None, tmp_path)  # the embedded default: SQLite in tmp_path
    await store.open()
    nodes = None
    if node_flavors:
        limits_on_nodes = PlacementLimits()
        nodes = NodePool(
            SimulatedProvider(clock.now),
            FirstFit(limits_on_nodes),
            limits_on_nodes,
            NodePoolConfig(node_flavors, min_nodes=1, max_nodes=max_nodes, min_node_age_s=0),
            clock=clock.now,
        )
        await nodes.start()
    driver, runtime = FakeDriver(clock, ledger), FakeRuntime(clock, ledger)
    config = InvokerConfig(
        owner="unit", limits=limits or PoolLimits(), stem_cells=stem_cells, host_cpus=2.0
    )
    invoker = Invoker(
        driver,  # type: ignore[arg-type]  # structurally a ContainerDriver
        runtime,  # type: ignore[arg-type]  # the methods of RuntimeClient the invoker calls
        store,
        config,
        clock=clock.now,
        wall=clock.wall,
        keep_alive=FixedTTL(keep_alive_s),
        nodes=nodes,
    )
    try:
        yield Rig(invoker, store, driver, runtime, clock, ledger, nodes)
    finally:
        await invoker.close()
        if nodes is not None:
            await nodes.close()
        await store.close()
