"""The invoker's view of containers: what each pool slot holds and how one is described.

Pure helpers: what a call needs of the pool, the CPU share a container gets, the labels
and sizes of a container to start.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from invoker.api import FunctionSpec
from invoker.containers.pool import Demand
from invoker.drivers.base import INSTANCE_LABEL, MANAGED_LABEL, ContainerHandle, ContainerSpec


@dataclass(frozen=True)
class Prewarm:
    """A function container to start at `at` and keep idle until `until` (monotonic)."""

    spec: FunctionSpec
    at: float
    until: float


class Failure(enum.Enum):
    """Whose fault a container that could not serve its calls was."""

    FUNCTION = "function"  # its code did not load: the tenant's to fix
    PLATFORM = "platform"  # starting or loading failed on our side
    NO_CAPACITY = "no_capacity"  # no node could take it now: the caller may retry


@dataclass
class Container:
    """The runtime side of one pool slot."""

    slot: str
    handle: ContainerHandle
    spec: FunctionSpec | None = None  # None while a stem cell
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    init_error: str | None = None  # for FUNCTION: the tenant's text; else the operator's
    init_failure: Failure | None = None
    init_ms: float = 0.0
    running: int = 0  # calls inside the container now; at 0 it is frozen

    def failed(self, failure: Failure, error: str) -> None:
        """Mark the container unable to serve, and why."""
        self.init_failure = failure
        self.init_error = error


def cpus_for(memory_mb: int, host_cpus: float) -> float:
    """CPU quota for a container: one core per GiB, at least one, at most the host's.

    A Lambda-style proportional share (1 vCPU per 1769 MB) would give a 128 MB function
    7% of a core, which turns a 40 ms interpreter start into half a second.
    """
    return min(host_cpus, max(1.0, memory_mb / 1024))


def container_spec(
    name: str,
    runtime: str,
    memory_mb: int,
    spec: FunctionSpec | None,
    *,
    owner: str,
    instance_id: str,
    host_cpus: float,
    node: str,
    api_socket_dir: str | None,
) -> ContainerSpec:
    """A container to start: a stem cell (no spec) or one for a function."""
    labels = {MANAGED_LABEL: owner, INSTANCE_LABEL: instance_id}
    if spec is not None:
        labels.update(
            {
                "io.nimbus.tenant": spec.tenant,
                "io.nimbus.function": spec.name,
                "io.nimbus.version": str(spec.version),
            }
        )
    return ContainerSpec(
        name=name,
        runtime=runtime,
        memory_mb=memory_mb,
        cpus=cpus_for(memory_mb, host_cpus),
        network=spec.network if spec is not None else False,
        labels=labels,
        node=node,
        api_socket_dir=api_socket_dir,
        netns_group=spec.tenant if spec is not None and not spec.network else None,
    )


def demand_of(spec: FunctionSpec) -> Demand:
    """What a call of `spec` needs from the pool."""
    return Demand(
        key=spec.key,
        runtime=spec.runtime,
        memory_mb=spec.memory_mb,
        concurrency=spec.concurrency,
        stem_ok=not spec.network,
    )


def policy_key(spec: FunctionSpec) -> tuple[str, str]:
    """Keep-alive history belongs to the function, across its versions."""
    return (spec.tenant, spec.name)
