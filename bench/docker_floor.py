"""The docker floor of a cold start: a container started with exactly the production
arguments (`container_kwargs`), and /init and /run straight to its socket, nothing else."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import docker
from docker.models.containers import _create_container_args
from in_process import MEMORY_MB, RUNTIME, source

from invoker.containers.model import cpus_for
from invoker.drivers.base import ContainerSpec
from invoker.drivers.docker import SOCKET_NAME, container_kwargs

BENCH_LABEL = "io.nimbus.bench"


@dataclass
class Started:
    """A floor container that is up, with its start-up phases (ms)."""

    name: str
    socket: str
    phases: dict[str, float]


@dataclass
class Floor:
    """Starts containers the way the docker driver does, minus everything Nimbus adds."""

    client: docker.DockerClient
    image: str
    root: Path
    holder: str | None = None
    names: set[str] = field(default_factory=set)
    counter: int = 0

    async def start(self, netns: bool) -> Started:
        """create + start with `container_kwargs`, then a tight poll for the proxy's socket."""
        self.counter += 1
        name = f"nbbench-{os.getpid()}-{self.counter}"
        socket_dir = self.root / name
        socket_dir.mkdir(parents=True)
        os.chmod(socket_dir, 0o777)
        spec = ContainerSpec(
            name=name,
            runtime=RUNTIME,
            memory_mb=MEMORY_MB,
            cpus=cpus_for(MEMORY_MB, float(os.cpu_count() or 1)),
            labels={BENCH_LABEL: "cold_start"},
        )
        holder = self.holder if netns else None
        kwargs = container_kwargs(spec, self.image, socket_dir, holder)
        # What containers.create() does before create_container, without its inspect.
        create_args = _create_container_args({**kwargs, "version": self.client.api._version})
        api = self.client.api
        self.names.add(name)
        t0 = time.perf_counter()
        made = await asyncio.to_thread(api.create_container, **create_args)
        t1 = time.perf_counter()
        await asyncio.to_thread(api.start, made["Id"])
        t2 = time.perf_counter()
        path = str(socket_dir / SOCKET_NAME)
        while True:  # tight poll: the floor, not a polling strategy
            try:
                _, writer = await asyncio.open_unix_connection(path)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.0005)
        t3 = time.perf_counter()
        t = time.perf_counter()
        await asyncio.to_thread(api.inspect_container, made["Id"])
        inspect_ms = (time.perf_counter() - t) * 1000
        phases = {
            "create": (t1 - t0) * 1000,
            "start": (t2 - t1) * 1000,
            "socket": (t3 - t2) * 1000,
            "inspect": inspect_ms,  # not in the total: containers.run() does it before start
        }
        return Started(name, path, phases)

    async def cold(self, netns: bool) -> dict[str, float]:
        """One create+start+socket+/init+/run, timed per phase (ms); the container is removed."""
        started = await self.start(netns)
        try:
            async with Direct(started.socket) as direct:
                init_ms, run_ms = await direct.init_and_run()
        finally:
            await asyncio.to_thread(self.remove, started.name)
        phases = {**started.phases, "init": init_ms, "run": run_ms}
        phases["total"] = sum(phases[p] for p in ("create", "start", "socket", "init", "run"))
        return phases

    def remove(self, name: str) -> None:
        try:
            self.client.api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        self.names.discard(name)
        shutil.rmtree(self.root / name, ignore_errors=True)


class Direct:
    """/init and /run straight to one container's unix socket (no gateway, no store)."""

    def __init__(self, path: str) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path))

    async def __aenter__(self) -> Direct:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    async def _post(self, path: str, body: dict[str, Any]) -> float:
        t = time.perf_counter()
        async with self._session.post(f"http://c{path}", json=body) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        return (time.perf_counter() - t) * 1000

    async def init_and_run(self) -> tuple[float, float]:
        """ms of /init (new connection included) and of the first /run."""
        code = {"code": source("floor"), "binary": False, "main": "main.handler", "env": {}}
        init_ms = await self._post("/init", {"value": code})
        return init_ms, await self.run()

    async def run(self) -> float:
        body = {"value": {"x": 1}, "activation_id": "bench",
                "deadline": int((time.time() + 30) * 1000)}  # fmt: skip
        return await self._post("/run", body)
