"""Docker driver for an engine on another VM: containers reached over a published TCP port.

A remote engine cannot see this machine's directories, so the unix-socket data path of
`docker.DockerDriver` is out. Each container instead listens on TCP, its port published
on the VM's address, and its proxy demands a per-container token, because other
containers on that VM can reach the published port too. The containers share a bridge
network with no NAT (nothing comes back from outside) and no traffic between containers,
so tenants stay apart; it is created on first use and removed on close.

The runtime image cannot be pulled (there may be no registry): `prepare` copies it from
this machine's engine when the remote one lacks it, printing progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
from requests.exceptions import RequestException

from invoker.containers.cgroups import CallMeter
from invoker.drivers.base import (
    MANAGED_LABEL,
    ContainerHandle,
    ContainerSpec,
    ContainerStats,
    DriverError,
)
from invoker.drivers.docker import RUNTIME_UID
from invoker.drivers.engine import Engine, hardened
from invoker.drivers.readiness import http_healthz_probe
from invoker.providers.docker_hosts import DockerHost

T = TypeVar("T")
log = logging.getLogger("nimbus.docker-remote")

PROXY_PORT = 8080
COPY_TIMEOUT_S = 600
API_VERSION = "1.41"  # Docker 20.10; later engines still accept it
ROLE_LABEL = "io.nimbus.role"
NO_NAT = {
    "com.docker.network.bridge.enable_ip_masquerade": "false",
    "com.docker.network.bridge.enable_icc": "false",
}
EGRESS = {"com.docker.network.bridge.enable_icc": "false"}


def engine_client(host: DockerHost, timeout: int = 60) -> docker.DockerClient:
    """A docker SDK client for the host's engine, with mutual TLS where configured."""
    tls: docker.tls.TLSConfig | bool = False
    if host.tls_dir is not None:
        tls = docker.tls.TLSConfig(
            client_cert=(str(host.tls_dir / "cert.pem"), str(host.tls_dir / "key.pem")),
            ca_cert=str(host.tls_dir / "ca.pem"),
            verify=True,
        )
    # A pinned API version: "auto" would send a request before trust_env can be turned off.
    client = docker.DockerClient(base_url=host.url, tls=tls, timeout=timeout, version=API_VERSION)
    # The engine's own CA only: REQUESTS_CA_BUNDLE or a proxy from the environment must not
    # replace it (requests lets them override the CA the SDK passes).
    client.api.trust_env = False
    return client


def network_name(owner: str, egress: bool) -> str:
    """The bridge network this deployment's containers use on an engine.

    One for all tenants, not one each: inter-container traffic is off on it, which keeps
    containers apart as well as separate bridges would (both rest on the engine's
    iptables), and a network per tenant would run out of Docker's ~30 default address
    pools after a few dozen tenants on one VM.
    """
    digest = hashlib.sha256(owner.encode()).hexdigest()[:12]
    return f"nimbus-{'egress' if egress else 'ns'}-{digest}"


def remote_container_kwargs(
    spec: ContainerSpec, image: str, network: str, bind_address: str, token: str
) -> dict[str, Any]:
    """The docker SDK arguments for one runtime container on a remote engine (pure)."""
    return {
        "image": image,
        "name": spec.name,
        "detach": True,
        "labels": dict(spec.labels),
        "environment": {
            **spec.env,
            "NIMBUS_HOST": "0.0.0.0",
            "NIMBUS_PORT": str(PROXY_PORT),
            "NIMBUS_PROXY_TOKEN": token,
        },
        **hardened(spec.memory_mb, spec.cpus, RUNTIME_UID),
        "network": network,
        "ports": {f"{PROXY_PORT}/tcp": (bind_address, None)},
    }


def published_port(attrs: dict[str, Any]) -> int:
    """The host port Docker chose for the proxy, from a container's inspect data."""
    bindings = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in bindings.get(f"{PROXY_PORT}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    raise DriverError("the engine published no port for the runtime proxy")


class RemoteDockerDriver:
    """Runs runtime containers on one remote Docker engine (one VM of the pool)."""

    name = "docker-remote"

    def __init__(
        self,
        host: DockerHost,
        image_for: Callable[[str], str],
        owner: str,
        *,
        client: docker.DockerClient | None = None,
        source: Callable[[], docker.DockerClient | None] | None = None,
        runtimes: tuple[str, ...] = (),
        threads: int = 16,
        ready_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self._image_for = image_for
        self._owner = owner
        self._client = client or engine_client(host)
        self._source = source
        self._runtimes = runtimes
        self._engine = Engine(self._client, threads=threads, name=f"nimbus-{host.id}")
        self._ready_timeout = ready_timeout
        self._networks: dict[str, str] = {}
        self._network_lock = asyncio.Lock()
        self._started: set[str] = set()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._engine.call(fn, *args, **kwargs)

    async def info(self) -> dict[str, Any]:
        """The engine's `docker info` (CPU count, memory)."""
        try:
            return dict(await self._call(self._client.info))
        except (docker.errors.DockerException, RequestException, OSError) as exc:
            raise DriverError(f"Docker host {self.host.id} ({self.host.url}): {exc}") from exc

    async def prepare(self) -> None:
        """Make sure the runtime images are on the engine, copying them if they are not."""
        for runtime in self._runtimes:
            await self._call(self._ensure_image, self._image_for(runtime))

    def _ensure_image(self, tag: str) -> None:
        try:
            self._client.images.get(tag)
            return
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.DockerException, RequestException) as exc:
            raise DriverError(f"Docker host {self.host.id}: {exc}") from exc
        source = self._source() if self._source is not None else None
        if source is None:
            raise DriverError(
                f"runtime image {tag} is missing on Docker host {self.host.id} and there is no "
                f"local engine to copy it from: run `DOCKER_HOST={self.host.url} nimbus images "
                "build` there"
            )
        try:
            size = source.images.get(tag).attrs.get("Size", 0)
        except docker.errors.ImageNotFound:
            source.close()
            raise DriverError(
                f"runtime image {tag} is on neither this machine nor Docker host "
                f"{self.host.id}: run `nimbus images build` first"
            ) from None
        log.info("copying %s (%d MB) to Docker host %s", tag, size // 2**20, self.host.id)
        start = time.monotonic()
        # Its own client: a copy may take minutes, every other call must fail fast.
        target = engine_client(self.host, timeout=COPY_TIMEOUT_S)
        try:
            target.images.load(_counted(source.api.get_image(tag), tag, self.host.id))
        except (docker.errors.DockerException, RequestException, OSError) as exc:
            raise DriverError(f"copying {tag} to Docker host {self.host.id} failed: {exc}") from exc
        finally:
            target.close()
            source.close()
        log.info("copied %s to %s in %.1f s", tag, self.host.id, time.monotonic() - start)

    async def _network(self, spec: ContainerSpec) -> str:
        name = network_name(self._owner, spec.network)
        if name in self._networks:
            return name
        async with self._network_lock:
            if name not in self._networks:
                await self._call(self._make_network, name, spec.network)
                self._networks[name] = name
        return name

    def _make_network(self, name: str, egress: bool) -> None:
        if self._client.networks.list(names=[name]):
            return  # left by an earlier run of ours: reuse it
        self._client.networks.create(
            name,
            driver="bridge",
            options=EGRESS if egress else NO_NAT,
            labels={MANAGED_LABEL: self._owner, ROLE_LABEL: "network"},
        )

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        """Start a container, find its published port, and wait for its /healthz."""
        token = secrets.token_urlsafe(24)
        self._started.add(spec.name)
        try:
            network = await self._network(spec)
            kwargs = remote_container_kwargs(
                spec, self._image_for(spec.runtime), network, self.host.bind_address, token
            )
            container = await self._call(self._client.containers.run, **kwargs)
            await self._call(container.reload)
            port = published_port(container.attrs)
        except docker.errors.ImageNotFound as exc:
            self._started.discard(spec.name)
            raise DriverError(f"runtime image missing on Docker host {self.host.id}") from exc
        except (docker.errors.DockerException, RequestException, OSError, DriverError) as exc:
            with contextlib.suppress(docker.errors.DockerException, RequestException, OSError):
                await self._call(self._remove_quietly, spec.name)
                self._started.discard(spec.name)
            raise DriverError(f"cannot start {spec.name} on {self.host.id}: {exc}") from exc
        handle = ContainerHandle(
            id=container.id or spec.name,
            name=spec.name,
            address=f"http://{self.host.address}:{port}",
            node=spec.node,
            token=token,
        )
        deadline = time.monotonic() + self._ready_timeout
        delay = 0.002
        while not await http_healthz_probe(handle.address):
            if time.monotonic() >= deadline:
                logs = b""
                with contextlib.suppress(docker.errors.DockerException, RequestException, OSError):
                    logs = await self._call(container.logs, tail=20)
                await self.destroy(handle)
                raise DriverError(
                    f"container {spec.name} on {self.host.id} did not answer /healthz: "
                    f"{logs.decode(errors='replace')[-500:]}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.05)
        return handle

    def _remove_quietly(self, name: str) -> None:
        self._engine.remove_quietly(name)

    async def destroy(self, handle: ContainerHandle) -> None:
        """Kill and remove the container; one that is gone already is fine."""
        await self._engine.remove(handle.id, f"{handle.name} on {self.host.id}")
        self._started.discard(handle.name)

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        """Not read remotely: the per-call cgroup files live on the other VM."""
        return ContainerStats(peak_memory_mb=None, cpu_seconds=None)

    async def ended(self, handle: ContainerHandle) -> str | None:
        """Why the container stopped, as its engine tells."""
        return await self._engine.ended(handle.id)

    def call_meter(self, handle: ContainerHandle) -> CallMeter | None:
        """None: usage records carry null peak memory rather than a guess."""
        return None

    async def set_memory_limit(self, handle: ContainerHandle, limit_mb: int) -> bool:
        """Not on remote engines yet: containers keep their full memory."""
        return False

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        """Remove containers of `owner` on this engine that another instance started."""
        try:
            removed, _ = await self._engine.remove_orphans(owner, instance_id)
        except (docker.errors.DockerException, RequestException, OSError) as exc:
            log.warning("cannot remove orphans on %s: %s", self.host.id, exc)
            return 0
        return removed

    async def close(self) -> None:
        """Remove what was started and not destroyed, then this run's networks."""
        await self._engine.settle()
        for name in list(self._started):
            try:
                await self._call(self._remove_quietly, name)
            except (docker.errors.DockerException, RequestException, OSError) as exc:
                # One refusal (a dockerd restart can leave a container whose root filesystem
                # stays mounted) must not stop the sweep of the others and the networks.
                log.warning("cannot remove %s on %s: %s", name, self.host.id, exc)
        self._started.clear()
        for name in list(self._networks):
            try:
                await self._call(self._client.api.remove_network, name)
            except (docker.errors.DockerException, RequestException):
                pass  # still in use by a container another instance runs: leave it
        self._networks.clear()
        await self._engine.close()


def _counted(chunks: Iterator[bytes], tag: str, host: str) -> Iterator[bytes]:
    """Pass an image stream through, logging progress every 32 MB."""
    sent = 0
    mark = 32 * 2**20
    for chunk in chunks:
        sent += len(chunk)
        if sent >= mark:
            log.info("copying %s to %s: %d MB sent", tag, host, sent // 2**20)
            mark += 32 * 2**20
        yield chunk
