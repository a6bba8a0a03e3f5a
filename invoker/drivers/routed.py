"""One driver per node: containers go to the engine of the node placement chose.

With the `docker-hosts` provider every node is its own Docker engine; this driver keeps
one driver per node id and sends each call to the right one, so the invoker still sees a
single `ContainerDriver`.
"""

from __future__ import annotations

from collections.abc import Mapping

from invoker.containers.cgroups import CallMeter
from invoker.drivers.base import (
    ContainerDriver,
    ContainerHandle,
    ContainerSpec,
    ContainerStats,
    DriverError,
)


class NodeRoutedDriver:
    """Routes create by `spec.node` and everything else by `handle.node`."""

    name = "docker-hosts"

    def __init__(self, drivers: Mapping[str, ContainerDriver]) -> None:
        self._drivers = dict(drivers)

    def driver_for(self, node: str | None) -> ContainerDriver:
        """The driver of a node; DriverError for a container placed nowhere we know."""
        driver = self._drivers.get(node or "")
        if driver is None:
            raise DriverError(f"no Docker host for node {node!r}")
        return driver

    async def create(self, spec: ContainerSpec) -> ContainerHandle:
        """Start the container on its node's engine."""
        return await self.driver_for(spec.node).create(spec)

    async def destroy(self, handle: ContainerHandle) -> None:
        """Remove the container from the engine it runs on."""
        await self.driver_for(handle.node).destroy(handle)

    async def stats(self, handle: ContainerHandle) -> ContainerStats:
        """Usage as the node's driver can read it."""
        return await self.driver_for(handle.node).stats(handle)

    async def ended(self, handle: ContainerHandle) -> str | None:
        """As the node's driver can tell."""
        driver = self._drivers.get(handle.node or "")
        return await driver.ended(handle) if driver is not None else None

    def call_meter(self, handle: ContainerHandle) -> CallMeter | None:
        """The node's driver's meter, if it has one."""
        driver = self._drivers.get(handle.node or "")
        return driver.call_meter(handle) if driver is not None else None

    async def set_memory_limit(self, handle: ContainerHandle, limit_mb: int) -> bool:
        """The node's driver resizes, if it can."""
        driver = self._drivers.get(handle.node or "")
        return await driver.set_memory_limit(handle, limit_mb) if driver is not None else False

    async def remove_orphans(self, owner: str, instance_id: str) -> int:
        """Orphans on every engine of the list."""
        total = 0
        for driver in self._drivers.values():
            total += await driver.remove_orphans(owner, instance_id)
        return total

    async def close(self) -> None:
        """Close every node's driver, even when one fails."""
        errors = []
        for driver in self._drivers.values():
            try:
                await driver.close()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]
