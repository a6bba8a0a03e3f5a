"""The invoker: async glue between the warm pool, a driver, the runtime client and the store.

Data flows one way through `invoke`: request -> container (warm or cold) -> /run ->
result -> activation record in the store -> result back to the caller.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from invoker import metering
from invoker.api import Activation, FunctionSpec, InvokeRequest, InvokeResult, Status
from invoker.drivers.base import (
    INSTANCE_LABEL,
    MANAGED_LABEL,
    ContainerDriver,
    ContainerHandle,
    ContainerSpec,
    ContainerStats,
    DriverError,
)
from invoker.metrics import InvokerMetrics
from invoker.runtime_client import RuntimeClient, RuntimeError_, RunTimeout
from invoker.store.base import Store

# Slack on top of the function's own timeout for the HTTP round trip to the proxy.
TRANSPORT_SLACK_S = 0.5
INIT_TIMEOUT_S = 60.0


@dataclass
class WarmContainer:
    """A running container initialised with one function version."""

    handle: ContainerHandle
    spec: FunctionSpec
    in_flight: int = 0
    last_used: float = 0.0
    busy_since: float = 0.0
    retired: bool = field(default=False)


@dataclass(frozen=True)
class InvokerConfig:
    """Tunables of the invoker."""

    owner: str  # labels every container; one data dir = one owner
    max_containers_per_function: int = 64
    billing_step_ms: int = 1
    node: str = "local"  # where containers run until a VM pool places them
    host_cpus: float = float(os.cpu_count() or 1)


def cpus_for(memory_mb: int, host_cpus: float) -> float:
    """CPU quota for a container: one core per GiB, at least one, at most the host's.

    A Lambda-style proportional share (1 vCPU per 1769 MB) would give a 128 MB function
    7% of a core, which turns a 40 ms interpreter start into half a second.
    """
    return min(host_cpus, max(1.0, memory_mb / 1024))


class Invoker:
    """Runs invocations in containers and records them."""

    def __init__(
        self,
        driver: ContainerDriver,
        client: RuntimeClient,
        store: Store,
        config: InvokerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        metrics: InvokerMetrics | None = None,
    ) -> None:
        self._driver = driver
        self._client = client
        self._store = store
        self._config = config
        self._clock = clock
        self._wall = wall
        self.instance_id = uuid.uuid4().hex
        self._containers: dict[tuple[str, str, int], list[WarmContainer]] = {}
        self._names = itertools.count(1)
        self._metrics = metrics
        if metrics is not None:
            metrics.watch(self.container_states)

    @property
    def driver(self) -> ContainerDriver:
        return self._driver

    async def start(self) -> int:
        """Remove containers a previous run of this owner left behind; return how many."""
        return await self._driver.remove_orphans(self._config.owner, self.instance_id)

    async def close(self) -> None:
        """Remove every container this invoker started."""
        everything = [c for group in self._containers.values() for c in group]
        self._containers.clear()
        await asyncio.gather(*(self._destroy(c) for c in everything), return_exceptions=True)

    def containers(self, tenant: str | None = None, name: str | None = None) -> list[WarmContainer]:
        """The live containers, optionally of one tenant's function."""
        return [
            c
            for (t, n, _), group in self._containers.items()
            for c in group
            if (tenant is None or t == tenant) and (name is None or n == name)
        ]

    def container_states(self) -> dict[str, int]:
        """How many containers are idle and how many are serving calls."""
        states = {"idle": 0, "busy": 0}
        for c in self.containers():
            states["busy" if c.in_flight else "idle"] += 1
        return states

    async def retire(self, tenant: str, name: str) -> None:
        """Remove a function's containers: idle ones now, busy ones when their calls end."""
        for key in [k for k in self._containers if k[0] == tenant and k[1] == name]:
            for c in list(self._containers.get(key, [])):
                c.retired = True
                if c.in_flight == 0:
                    await self._discard(c)

    # the call path

    def _warm(self, spec: FunctionSpec) -> WarmContainer | None:
        group = self._containers.get(spec.key, [])
        free = [c for c in group if not c.retired and c.in_flight < spec.concurrency]
        # Most recently used first: keeps the rest idle long enough to be reaped.
        return max(free, key=lambda c: c.last_used, default=None)

    async def _cold(self, spec: FunctionSpec) -> WarmContainer:
        name = f"nimbus-{self.instance_id[:8]}-{next(self._names)}-{uuid.uuid4().hex[:6]}"
        cspec = ContainerSpec(
            name=name,
            runtime=spec.runtime,
            memory_mb=spec.memory_mb,
            cpus=cpus_for(spec.memory_mb, self._config.host_cpus),
            network=spec.network,
            node=self._config.node,
            labels={
                MANAGED_LABEL: self._config.owner,
                INSTANCE_LABEL: self.instance_id,
                "io.nimbus.tenant": spec.tenant,
                "io.nimbus.function": spec.name,
                "io.nimbus.version": str(spec.version),
            },
        )
        handle = await self._driver.create(cspec)
        container = WarmContainer(handle=handle, spec=spec, in_flight=1, busy_since=self._clock())
        self._containers.setdefault(spec.key, []).append(container)
        return container

    async def _init(self, container: WarmContainer) -> str | None:
        """Send the code; returns an error message when the code cannot load."""
        spec = container.spec
        code = await self._store.get_code(spec.code_sha256)
        if code is None:
            raise DriverError(f"code blob {spec.code_sha256} is missing from the store")
        text = base64.b64encode(code).decode() if spec.code_kind == "zip" else code.decode()
        env = {
            **spec.env,
            "NIMBUS_FUNCTION_NAME": spec.name,
            "NIMBUS_FUNCTION_VERSION": str(spec.version),
        }
        resp = await self._client.init(
            container.handle.address,
            code=text,
            binary=spec.code_kind == "zip",
            main=spec.handler,
            env=env,
            timeout=INIT_TIMEOUT_S,
        )
        if resp.ok:
            return None
        return str(resp.body.get("error") or f"/init answered {resp.status}")

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Run one call to completion and record its activation."""
        spec = request.function
        wall_start = self._wall()
        t0 = self._clock()
        cold = False
        init_ms = 0.0
        container = self._warm(spec)
        try:
            if container is not None:
                container.in_flight += 1
            else:
                cold = True
                container = await self._cold(spec)
                error = await self._init(container)
                init_ms = (self._clock() - t0) * 1000
                if error is not None:
                    await self._discard(container)
                    return await self._finish(
                        request,
                        Status.APPLICATION_ERROR,
                        None,
                        f"init failed: {error}",
                        [],
                        wall_start,
                        t0,
                        None,
                        init_ms,
                        cold,
                        None,
                    )
        except (DriverError, RuntimeError_, RunTimeout) as exc:
            if container is not None:
                await self._discard(container)
            return await self._finish(
                request,
                Status.PLATFORM_ERROR,
                None,
                f"could not start a container: {exc}",
                [],
                wall_start,
                t0,
                None,
                init_ms,
                cold,
                None,
            )
        return await self._run(request, container, wall_start, t0, init_ms, cold)

    async def _run(
        self,
        request: InvokeRequest,
        container: WarmContainer,
        wall_start: float,
        t0: float,
        init_ms: float,
        cold: bool,
    ) -> InvokeResult:
        spec = request.function
        deadline_ms = int((self._wall() + spec.timeout_s) * 1000)
        payload: dict[str, Any] = {
            "value": dict(request.args),
            "activation_id": request.activation_id,
            "deadline": deadline_ms,
            "function_name": spec.name,
            "function_version": spec.version,
            "memory_limit_mb": spec.memory_mb,
        }
        # Measure only a call that has the container to itself: figures are per container.
        gauge = self._driver.call_meter(container.handle) if container.in_flight == 1 else None
        if gauge is not None:
            gauge.start()
        run_start = self._clock()
        try:
            resp = await self._client.run(
                container.handle.address, payload, spec.timeout_s + TRANSPORT_SLACK_S
            )
        except RunTimeout:
            await self._discard(container)
            return await self._finish(
                request,
                Status.TIMEOUT,
                None,
                f"the function did not finish within its timeout of {spec.timeout_s:g} s",
                [],
                wall_start,
                t0,
                run_start,
                init_ms,
                cold,
                container,
            )
        except RuntimeError_ as exc:
            await self._discard(container)
            return await self._finish(
                request,
                Status.APPLICATION_ERROR,
                None,
                "the function's container ended during the call "
                f"(out of memory at {spec.memory_mb} MB, or the process exited): {exc}",
                [],
                wall_start,
                t0,
                run_start,
                init_ms,
                cold,
                container,
            )
        usage = gauge.stop() if gauge is not None else None
        self._release(container)
        logs = [str(line) for line in resp.body.get("logs", [])]
        if resp.ok:
            status, result, error = Status.SUCCESS, resp.body.get("result"), None
        else:
            status, result = Status.APPLICATION_ERROR, None
            error = str(resp.body.get("error") or f"/run answered {resp.status}")
        return await self._finish(
            request,
            status,
            result,
            error,
            logs,
            wall_start,
            t0,
            run_start,
            init_ms,
            cold,
            container,
            usage,
        )

    def _release(self, container: WarmContainer) -> None:
        container.in_flight -= 1
        container.last_used = self._clock()
        if container.retired and container.in_flight == 0:
            asyncio.get_running_loop().create_task(self._discard(container))

    async def _discard(self, container: WarmContainer) -> None:
        group = self._containers.get(container.spec.key)
        if group is not None and container in group:
            group.remove(container)
            if not group:
                del self._containers[container.spec.key]
        await self._destroy(container)

    async def _destroy(self, container: WarmContainer) -> None:
        self._client.forget(container.handle.address)
        try:
            await self._driver.destroy(container.handle)
        except DriverError:
            pass  # the orphan sweep at the next start removes what is left

    async def _finish(
        self,
        request: InvokeRequest,
        status: Status,
        result: Any,
        error: str | None,
        logs: list[str],
        wall_start: float,
        t0: float,
        run_start: float | None,
        init_ms: float,
        cold: bool,
        container: WarmContainer | None,
        usage: ContainerStats | None = None,
    ) -> InvokeResult:
        spec = request.function
        now = self._clock()
        duration_ms = (now - run_start) * 1000 if run_start is not None else 0.0
        outcome = InvokeResult(
            activation_id=request.activation_id,
            status=status,
            result=result,
            error=error,
            logs=logs,
            start=wall_start,
            end=wall_start + (now - t0),
            duration_ms=round(duration_ms, 3),
            init_ms=round(init_ms, 3),
            wait_ms=0.0,
            cold_start=cold,
            memory_mb=spec.memory_mb,
            node=container.handle.node if container is not None else None,
            peak_memory_mb=usage.peak_memory_mb if usage is not None else None,
            cpu_seconds=usage.cpu_seconds if usage is not None else None,
        )
        if self._metrics is not None:
            self._metrics.observe(spec, outcome)
        record = metering.meter(outcome, spec, step_ms=self._config.billing_step_ms)
        await self._store.save_activation(activation_from(request, outcome), record.to_row())
        return outcome


def activation_from(request: InvokeRequest, result: InvokeResult) -> Activation:
    """The stored form of a finished call."""
    spec = request.function
    return Activation(
        id=request.activation_id,
        tenant=spec.tenant,
        function=spec.name,
        version=spec.version,
        status=result.status,
        result=result.result,
        error=result.error,
        logs=result.logs,
        start=result.start,
        end=result.end,
        duration_ms=result.duration_ms,
        init_ms=result.init_ms,
        wait_ms=result.wait_ms,
        cold_start=result.cold_start,
        memory_mb=result.memory_mb,
        node=result.node,
        trigger=request.trigger,
        peak_memory_mb=result.peak_memory_mb,
        cpu_seconds=result.cpu_seconds,
    )
