"""Opening a `docker-hosts` fleet: one driver per engine of the list, behind one router.

A ``unix://`` engine is on this machine and gets the local driver (unix-socket data path,
per-call cgroup metering, the API socket); a ``tcp://`` engine is another VM and gets the
remote driver (published port with a token, image copied over on first use).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker

from invoker.drivers.base import ContainerDriver, DriverError
from invoker.drivers.docker import DockerDriver
from invoker.drivers.docker_remote import RemoteDockerDriver, engine_client
from invoker.drivers.routed import NodeRoutedDriver
from invoker.providers.docker_hosts import DockerHost, with_capacity


@dataclass
class Fleet:
    """The engines of the list, their capacities filled in, and the driver over them."""

    hosts: list[DockerHost]
    driver: NodeRoutedDriver
    remotes: dict[str, RemoteDockerDriver]

    async def prepare(self, host_id: str) -> None:
        """Get a host ready to be a node (the runtime images on its engine)."""
        remote = self.remotes.get(host_id)
        if remote is not None:
            await remote.prepare()


def _local_source() -> docker.DockerClient | None:
    """This machine's engine, if one answers: where runtime images are copied from."""
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception:  # no local engine: images must already be on the hosts
        return None
    return client


def open_fleet(
    hosts: Sequence[DockerHost],
    run_dir: Path,
    owner: str,
    image_for: Callable[[str], str],
    runtimes: tuple[str, ...],
) -> Fleet:
    """Connect to every engine; blocking (it asks engines for their size): run off the loop.

    An engine that does not answer fails the start only if the file leaves its size out.
    """
    drivers: dict[str, ContainerDriver] = {}
    remotes: dict[str, RemoteDockerDriver] = {}
    filled = []
    for host in hosts:
        client = engine_client(host, timeout=60)
        if host.vcpu is None or host.memory_mb is None:
            try:
                host = with_capacity(host, client.info())
            except Exception as exc:
                client.close()
                raise DriverError(
                    f"Docker host {host.id} ({host.url}) does not answer and the hosts file "
                    f"gives no vcpu/memory_mb for it: {exc}"
                ) from exc
        filled.append(host)
        if host.local:
            drivers[host.id] = DockerDriver(run_dir, image_for, client=client)
        else:
            remote = RemoteDockerDriver(
                host, image_for, owner, client=client, source=_local_source, runtimes=runtimes
            )
            drivers[host.id] = remotes[host.id] = remote
    return Fleet(filled, NodeRoutedDriver(drivers), remotes)
