"""Docker driver: one hardened container per runtime instance, reached over a unix socket.

Every docker SDK call runs on a dedicated thread pool, never on the event loop. The
proxy listens on a socket inside a per-container host directory bind-mounted at
/run/nimbus, so calls work with networking disabled and skip the port-publishing path.

That directory is the one host path a container can write, and only while its proxy
starts (before any function code is loaded): once the socket answers, the directory is
made read-only to the container, so nothing can be added, replaced or filled there. The
runtime client pins the socket at that moment and never follows the path again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
from docker.models.containers import Container
from requests.exceptions import RequestException

from invoker.containers.cgroups import CallMeter, docker_meter, thaw_container
from invoker.drivers.base import (
    INSTANCE_LABEL,
    MANAGED_LABEL,
    ContainerHandle,
    ContainerSpec,
    ContainerStats,
    DriverError,
    ImageFacts,
    ImageRejected,
)
from invoker.drivers.egress import EGRESS_NETWORK, ensure_egress_network
from invoker.drivers.engine import Engine, hardened, start_failed_in_runtime
from invoker.drivers.image_containers import (
    ADAPTER_RUNTIME,
    adapter_kwargs,
    adapter_name,
    app_kwargs,
    image_facts,
)
from invoker.drivers.readiness import wait_for_unix_socket
from invoker.own_images import root_problem

T = TypeVar("T")
log = logging.getLogger("nimbus.docker")

SOCKET_DIR_IN_CONTAINER = "/run/nimbus"
API_DIR_IN_CONTAINER = "/run/nimbus-api"
SOCKET_NAME = "p.sock"
RUNTIME_UID = "10001"


def engine_answers(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers at the environment's DOCKER_HOST."""
    try:
        client = docker.from_env(timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:  # any failure means "no engine here"
        return False
    return True


def holder_kwargs(name: str, image: str, labels: dict[str, str]) -> dict[str, Any]:
    """A do-nothing container whose empty network namespace a tenant's containers join."""
    return {
        "image": image,
        "name": name,
        "detach": True,
        "labels": {**labels, "io.nimbus.role": "netns"},
        # `sleep`, not Python: a holder must never die of its memory limit (on a cold page
        # cache cgroup v1 charges the interpreter's files to the first container reading
        # them), or every container in its namespace fails to start. Removal is a SIGKILL.
        "entrypoint": ["sleep", "infinity"],
        "user": RUNTIME_UID,
        "mem_limit": "32m",
        "memswap_limit": "32m",
        "pids_limit": 4,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "network_mode": "none",
    }


def container_kwargs(
    spec: ContainerSpec,
    image: str,
    socket_dir: Path,
    holder: str | None = None,
    user: str = RUNTIME_UID,
) -> dict[str, Any]:
    """The docker SDK arguments for one runtime container (pure, so tests can read them).

    With a `holder`, the container joins that container's network namespace, which has
    no network in it: Docker then skips the per-container network setup that makes a
    `network=none` start slow, and the container is still cut off from every network.
    """
    kwargs: dict[str, Any] = {
        "image": image,
        "name": spec.name,
        "detach": True,
        "labels": dict(spec.labels),
        "environment": {
            **spec.env,
            "NIMBUS_SOCKET": f"{SOCKET_DIR_IN_CONTAINER}/{SOCKET_NAME}",
        },
        **hardened(spec.memory_mb, spec.cpus, user),
        "volumes": {str(socket_dir): {"bind": SOCKET_DIR_IN_CONTAINER, "mode": "rw"}},
        "network_mode": EGRESS_NETWORK if spec.network else "none",
    }
    if holder is not None and not spec.network:
        kwargs["network_mode"] = f"container:{holder}"
    if spec.api_socket_dir:
        kwargs["volumes"][spec.api_socket_dir] = {"bind": API_DIR_IN_CONTAINER, "mode": "ro"}
        kwargs["environment"]["NIMBUS_API_SOCKET"] = f"{API_DIR_IN_CONTAINER}/api.sock"
    if spec.cgroup_parent:
        kwargs["cgroup_parent"] = spec.cgroup_parent
    return kwargs


class DockerDriver:
    """Runs runtime containers on a Docker engine."""

    name = "docker"

    def __init__(
        self,
        run_dir: Path,
        image_for: Callable[[str], str],
        *,
        client: docker.DockerClient | None = None,
        threads: int = 32,
        ready_timeout: float = 30.0,
        allow_root_images: bool = False,
    ) -> None:
        self._run_dir = run_dir
        self._allow_root_images = allow_root_images  # functions' own images may run as root
        self._image_users: dict[str, str] = {}  # image id -> "uid:gid" (`image_facts`)
        self._image_for = image_for
        self._client = client or docker.from_env(timeout=60)
        self._engine = Engine(self._client, threads=threads, name="nimbus-docker")
        self._ready_timeout = ready_timeout
        self._containers: dict[str, Container] = {}
        self._meters: dict[str, CallMeter] = {}
        self._holders: dict[str, str] = {}
        self._started: set[str] = set()  # names asked for and not yet destroyed
        self._holder_locks: dict[str, asyncio.Lock] = {}
        self._parents: dict[str, str | None] = {}

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._engine.call(fn, *args, **kwargs)

    def _socket_dir(self, name: str) -> Path:
        return self._run_dir / name

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        """Start a container and wait until its proxy accepts connections."""
        socket_dir = self._socket_dir(spec.name)
        socket_dir.mkdir(parents=True, exist_ok=True)
        self._started.add(spec.name)
        # The proxy runs as an unprivileged uid and must create its socket here; the
        # directory is locked once it has (see `_lock`).
        os.chmod(socket_dir, 0o777)
        try:
            if spec.network:
                await self._call(ensure_egress_network, self._client)
            if spec.image is not None:
                container, sidecar = await self._start_own(spec, socket_dir)
            else:
                image = self._image_for(spec.runtime)
                container, sidecar = await self._start(spec, image, image, socket_dir), None
        except docker.errors.ImageNotFound as exc:
            await self._forget_failed(spec)
            if spec.image is not None:  # removed since it was checked, or the adapter's
                raise DriverError(f"an image is missing: {exc.explanation}") from exc
            raise DriverError(
                f"runtime image {self._image_for(spec.runtime)} is missing: run "
                "`nimbus images build`"
            ) from exc
        except ImageRejected as exc:
            await self._forget_failed(spec)
            raise DriverError(str(exc)) from exc
        except (docker.errors.DockerException, RequestException, OSError, DriverError) as exc:
            # `run` is create + start: a refused start leaves a container in state Created.
            await self._forget_failed(spec)
            raise DriverError(f"cannot start container {spec.name}: {exc}") from exc
        handle = ContainerHandle(
            id=container.id or spec.name,
            name=spec.name,
            address=f"unix:{socket_dir / SOCKET_NAME}",
            node=spec.node,
            sidecar=sidecar,
        )
        self._containers[handle.id] = container
        self._parents[handle.id] = spec.cgroup_parent
        try:
            await wait_for_unix_socket(socket_dir / SOCKET_NAME, self._ready_timeout)
            _lock(socket_dir)
        except (DriverError, OSError) as exc:
            logs = b""
            with contextlib.suppress(docker.errors.DockerException, RequestException, OSError):
                logs = await self._call(container.logs, tail=20)
            await self.destroy(handle)
            raise DriverError(
                f"container {spec.name} did not start ({exc}): "
                f"{logs.decode(errors='replace')[-500:]}"
            ) from None
        return handle

    async def _start(
        self, spec: ContainerSpec, image: str, holder_image: str, socket_dir: Path, user: str = ""
    ) -> Container:
        """Run a container that serves the protocol itself, in its tenant's empty network
        namespace where it has no network (the holder runs `holder_image`).

        A refused start is tried once more: with a new holder if it joined one (the holder
        may have died), or after a start the engine itself failed on its way (runc: the
        process died before it was started), which a busy engine does now and then.
        """
        for attempt in (1, 2):
            holder = None
            try:  # the holder's own start may fail the same way: it is inside the attempt
                if spec.netns_group is not None and not spec.network:
                    holder = await self._holder(spec, holder_image)
                kwargs = container_kwargs(spec, image, socket_dir, holder, user or RUNTIME_UID)
                return await self._call(self._client.containers.run, **kwargs)
            except docker.errors.APIError as exc:
                if attempt == 2 or (holder is None and not start_failed_in_runtime(exc)):
                    raise
                log.warning("starting %s failed (%s); trying once more", spec.name, exc)
            self._holders.pop(spec.netns_group or "", None)
            await self._call(self._remove_quietly, spec.name)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def admit_image(self, image: str, protocol: str | None) -> ImageFacts:
        """A function's own image as the engine has it; ImageRejected when it is missing
        or runs as root where root images are not allowed."""
        facts = await self._call(image_facts, self._client, image, protocol, self._image_users)
        problem = root_problem(image, int(facts.user.split(":")[0]), self._allow_root_images)
        if problem is not None:
            raise ImageRejected(problem)
        return facts

    async def _start_own(
        self, spec: ContainerSpec, socket_dir: Path
    ) -> tuple[Container, str | None]:
        """A function's own image (checked again: its tag may point elsewhere since the
        deploy); on the http protocol with its adapter beside it, whose id is returned."""
        assert spec.image is not None
        facts = await self.admit_image(spec.image, spec.image_protocol)
        runtime_image = self._image_for(ADAPTER_RUNTIME)
        # Run by id: exactly the image just checked, whatever its tag points at next.
        if facts.protocol == "nimbus":
            own = await self._start(spec, facts.image_id, runtime_image, socket_dir, facts.user)
            return own, None
        app_args = app_kwargs(spec, facts.image_id, facts.user)
        app = await self._call(self._client.containers.run, **app_args)
        self._started.add(adapter_name(spec.name))
        socket = f"{SOCKET_DIR_IN_CONTAINER}/{SOCKET_NAME}"
        kwargs = adapter_kwargs(
            spec, runtime_image, app.id or spec.name, socket_dir, socket, RUNTIME_UID
        )
        adapter = await self._call(self._client.containers.run, **kwargs)
        return app, adapter.id or adapter_name(spec.name)

    async def _forget_failed(self, spec: ContainerSpec) -> None:
        """Remove what a failed create left: containers that never ran, their directory."""
        names = [spec.name] + ([adapter_name(spec.name)] if spec.image is not None else [])
        for name in names:
            with contextlib.suppress(docker.errors.DockerException, RequestException, OSError):
                await self._call(self._remove_quietly, name)
                self._started.discard(name)
        remove_socket_dir(self._socket_dir(spec.name))

    async def _holder(self, spec: ContainerSpec, image: str) -> str:
        """The id of the running netns holder of the spec's group, started on first use."""
        group = spec.netns_group or ""
        lock = self._holder_locks.setdefault(group, asyncio.Lock())
        async with lock:
            found = self._holders.get(group)
            if found is not None:
                return found
            instance = spec.labels.get(INSTANCE_LABEL, "x")[:8]
            digest = hashlib.sha256(group.encode()).hexdigest()[:10]
            name = f"nimbus-ns-{instance}-{digest}"
            labels = {k: v for k, v in spec.labels.items() if k in (MANAGED_LABEL, INSTANCE_LABEL)}
            await self._call(self._remove_quietly, name)
            self._started.add(name)  # swept on close even if this call is cancelled
            holder = await self._call(
                self._client.containers.run, **holder_kwargs(name, image, labels)
            )
            self._holders[group] = holder.id or name
            return self._holders[group]

    def _remove_quietly(self, name: str) -> None:
        self._engine.remove_quietly(name)

    async def destroy(self, handle: ContainerHandle) -> None:
        """Kill and remove the container; a container that is gone already is fine."""
        self._containers.pop(handle.id, None)
        meter = self._meters.pop(handle.id, None)
        if meter is not None:
            meter.close()
        # A frozen container is thawed first: a kill must not wait on frozen processes.
        thaw_container(handle.id, self._parents.pop(handle.id, None))
        # On failure it is still known by name: close() sweeps it. An adapter goes first:
        # it lives in the network namespace of the container it serves.
        if handle.sidecar is not None:
            await self._engine.remove(handle.sidecar, f"the adapter of {handle.name}")
            self._started.discard(adapter_name(handle.name))
        await self._engine.remove(handle.id, f"container {handle.name}")
        self._started.discard(handle.name)
        remove_socket_dir(self._socket_dir(handle.name))

    async def ended(self, handle: ContainerHandle) -> str | None:
        """Why the container stopped (out of memory, killed, exited), or None."""
        return await self._engine.ended(handle.id)

    async def set_memory_limit(self, handle: ContainerHandle, limit_mb: int) -> bool:
        """Resize through the engine, where the cgroup files cannot be written directly."""
        return await self._engine.set_memory_limit(handle.id, limit_mb)

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        """Peak memory since the last call began, and total CPU seconds, where readable."""
        meter = self.call_meter(handle)
        if meter is None:
            return ContainerStats(peak_memory_mb=None, cpu_seconds=None)
        return meter.snapshot()

    def call_meter(self, handle: ContainerHandle) -> CallMeter | None:
        """A per-call meter over the container's cgroup files."""
        meter = self._meters.get(handle.id)
        if meter is None:
            meter = docker_meter(handle.id, self._parents.get(handle.id))
            if meter is not None:
                self._meters[handle.id] = meter
        return meter

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        """Remove containers of `owner` that another (dead) instance started."""
        removed, names = await self._engine.remove_orphans(owner, instance_id)
        for name in names:
            remove_socket_dir(self._socket_dir(name))
        return removed

    async def close(self) -> None:
        """Sweep what was started and not destroyed, remove the netns holders, close the client."""
        await self._engine.settle()
        # One refusal (a container whose filesystem the engine cannot unmount) must not
        # stop the sweep of the others.
        for name in [*self._started, *self._holders.values()]:
            try:
                await self._call(self._remove_quietly, name)
            except (docker.errors.DockerException, RequestException, OSError) as exc:
                log.warning("cannot remove %s: %s", name, exc)
            remove_socket_dir(self._socket_dir(name))
        self._started.clear()
        self._holders.clear()
        await self._engine.close()


def _lock(socket_dir: Path) -> None:
    """Make the socket directory read-only to the container (its socket stays usable).

    The container's uid is neither owner nor root here, so it cannot undo this; the
    proxy's own clean-up unlink then fails quietly, and the host removes the directory.
    """
    os.chmod(socket_dir, 0o555)


def remove_socket_dir(socket_dir: Path) -> None:
    """Remove a container's socket directory (rmtree never follows a link it finds)."""
    with contextlib.suppress(OSError):
        os.chmod(socket_dir, 0o700)  # the owner needs write access back unless root
    shutil.rmtree(socket_dir, ignore_errors=True)
