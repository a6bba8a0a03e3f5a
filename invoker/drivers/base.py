"""The container driver seam: one Protocol, several real implementations.

A driver starts a runtime container that is listening for the /init,/run
protocol and says where to reach it. It never speaks that protocol itself:
`invoker.runtime_client` does, once, for every driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

# Drivers raise it; the gateway reads it from invoker.api.
from invoker.api import ImageRejected as ImageRejected

if TYPE_CHECKING:
    from invoker.containers.cgroups import CallMeter

MANAGED_LABEL = "io.nimbus.managed"
"""Every container Nimbus starts carries this label; its value names the owner (one data dir)."""

INSTANCE_LABEL = "io.nimbus.instance"
"""The process that started the container; another value under the same owner is an orphan."""


@dataclass(frozen=True)
class ContainerSpec:
    """What to start. Sizes come from the function (or the stem-cell default)."""

    name: str  # unique, DNS-safe
    runtime: str  # e.g. "python:3.11"
    memory_mb: int
    cpus: float = 1.0
    network: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    node: str | None = None  # the node placement chose, if any
    cgroup_parent: str | None = None  # set by the local VM provider: the node's cgroup
    api_socket_dir: str | None = None
    """Host directory holding the gateway's unix API socket (`api.sock`); the runtime
    offers it to the function on loopback, so functions without network can call back."""
    netns_group: str | None = None
    """Containers of one group (one tenant) may share a network namespace with no network
    in it: Docker starts them faster than `network=none` ones, and tenants stay apart."""
    image: str | None = None
    """A function's own image, run instead of the runtime's (`runtime` is then "image")."""
    image_protocol: str | None = None
    """How that image is spoken to: "nimbus" (/init and /run itself) or "http" (a plain
    HTTP server on $PORT, reached through an adapter container in its network namespace)."""


@dataclass(frozen=True)
class ContainerHandle:
    """A started container.

    `address` is either ``unix:/abs/path.sock`` or ``http://host:port``.
    """

    id: str
    name: str
    address: str
    node: str | None = None
    token: str | None = None
    """A secret the proxy asks for on /init and /run (set where its port is reachable by
    others, as on a shared VM); None where only the invoker can reach the proxy."""
    sidecar: str | None = None
    """The id of a second container that is part of this one (the adapter of an image on
    the http protocol): removed with it."""


@dataclass(frozen=True)
class ContainerStats:
    """Resource use read from the container's cgroup; None where unknown."""

    peak_memory_mb: float | None
    cpu_seconds: float | None


class DriverError(Exception):
    """The driver could not start, reach or remove a container (a platform error)."""


@dataclass(frozen=True)
class ImageFacts:
    """What the engine says of a function's own image, as the deploy checked it."""

    image: str  # the reference as deployed
    image_id: str  # the engine's content id
    protocol: str  # "nimbus" or "http", declared or detected
    runtime: str | None  # its io.nimbus.runtime label (an image built FROM a Nimbus one)
    user: str  # "uid:gid" it runs as


@runtime_checkable
class ImageHost(Protocol):
    """A driver that runs functions' own images from its engine."""

    async def admit_image(self, image: str, protocol: str | None) -> ImageFacts:
        """The image's facts, or ImageRejected saying why it cannot run here."""
        ...


@runtime_checkable
class ContainerDriver(Protocol):
    """Starts and removes runtime containers. Implementations never block the event loop."""

    name: str

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        """Start a container and return once its proxy accepts connections."""
        ...

    async def destroy(self, handle: ContainerHandle) -> None:
        """Stop and remove a container; removing one that is gone is not an error."""
        ...

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        """Peak memory and CPU time of the container so far."""
        ...

    def call_meter(self, handle: ContainerHandle) -> CallMeter | None:
        """The container's cgroup: measures one call's peak memory and CPU and freezes the
        container between calls, where the driver can."""
        ...

    async def set_memory_limit(self, handle: ContainerHandle, limit_mb: int) -> bool:
        """Change a running container's memory limit through the engine (ballooning, where
        the call meter cannot write the cgroup); False where the driver cannot or the
        engine refused (the limit is then unchanged)."""
        ...

    async def ended(self, handle: ContainerHandle) -> str | None:
        """Why a container that stopped did (out of memory, killed, exited), in words a
        tenant may read; None when it still runs or the driver cannot tell."""
        ...

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        """Remove containers of `owner` that another instance started; return how many."""
        ...

    async def close(self) -> None:
        """Release client resources."""
        ...
