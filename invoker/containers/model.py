"""How the invoker describes containers: pure helpers around the slot table.

What a call needs of the pool, a planned pre-warm, the CPU share a container gets, the
labels and sizes of a container to start. What one container is lives in `slots`.
"""

from __future__ import annotations

from dataclasses import dataclass

from invoker.api import FunctionSpec
from invoker.containers.pool import Demand
from invoker.drivers.base import INSTANCE_LABEL, MANAGED_LABEL, ContainerSpec


@dataclass(frozen=True)
class Prewarm:
    """A function container to start at `at` and keep idle until `until` (monotonic)."""

    spec: FunctionSpec
    at: float
    until: float


def cpus_for(memory_mb: int, host_cpus: float) -> float:
    """CPU quota for a container: one core per GiB, at least one, at most the host's.

    A Lambda-style proportional share (1 vCPU per 1769 MB) would give a 128 MB function
    7% of a core, which turns a 40 ms interpreter start into half a second.
    """
    return min(host_cpus, max(1.0, memory_mb / 1024))


@dataclass(frozen=True)
class ContainerDefaults:
    """What every container one invoker starts shares."""

    owner: str  # labels every container; one data dir = one owner
    instance_id: str  # the invoker that started it (another one's are orphans)
    host_cpus: float
    node: str  # where containers run until a node pool places them
    api_socket_dir: str | None  # where the gateway's api.sock lives, for callbacks


def container_spec(
    name: str,
    runtime: str,
    memory_mb: int,
    spec: FunctionSpec | None,
    defaults: ContainerDefaults,
) -> ContainerSpec:
    """A container to start: a stem cell (no spec) or one for a function."""
    labels = {MANAGED_LABEL: defaults.owner, INSTANCE_LABEL: defaults.instance_id}
    if spec is not None:
        labels.update(
            {
                "io.nimbus.tenant": spec.tenant,
                "io.nimbus.function": spec.name,
                "io.nimbus.version": str(spec.version),
            }
        )
    own = spec if spec is not None and spec.image is not None else None
    return ContainerSpec(
        name=name,
        runtime=runtime,
        memory_mb=memory_mb,
        cpus=cpus_for(memory_mb, defaults.host_cpus),
        network=spec.network if spec is not None else False,
        labels=labels,
        # An image of its own starts as its function's container: its program reads its
        # environment from the start (a runtime's gets it with the code at /init).
        env=function_env(own) if own is not None else {},
        node=defaults.node,
        # Calls back into the API pass through the Nimbus proxy, which an http image lacks.
        api_socket_dir=None
        if own is not None and own.image_protocol == "http"
        else defaults.api_socket_dir,
        netns_group=spec.tenant if spec is not None and not spec.network else None,
        image=own.image if own is not None else None,
        image_protocol=own.image_protocol if own is not None else None,
    )


def function_env(spec: FunctionSpec) -> dict[str, str]:
    """The environment a function's code sees: its own, and its name and version."""
    return {
        **spec.env,
        "NIMBUS_FUNCTION_NAME": spec.name,
        "NIMBUS_FUNCTION_VERSION": str(spec.version),
    }


def demand_of(spec: FunctionSpec) -> Demand:
    """What a call of `spec` needs from the pool."""
    return Demand(
        key=spec.key,
        runtime=spec.runtime,
        memory_mb=spec.memory_mb,
        concurrency=spec.concurrency,
        # A stem cell is a runtime's: a function with an image of its own never takes one.
        stem_ok=not spec.network and spec.image is None,
    )


def policy_key(spec: FunctionSpec) -> tuple[str, str]:
    """Keep-alive history belongs to the function, across its versions."""
    return (spec.tenant, spec.name)
