"""The `docker-hosts` VM provider: a static list of Docker engines, one per VM.

For a multi-VM deployment without Kubernetes: each VM runs a Docker engine reachable at a
DOCKER_HOST URL (``tcp://`` with mutual TLS, or ``unix://`` for the engine on this
machine). The list is fixed, so "provisioning" a node enlists the next free engine and
"releasing" one hands it back; what a node holds is what its host says (or what the
engine reports). The short form is a comma-separated list of DOCKER_HOST URLs with TLS
from DOCKER_CERT_PATH (`hosts_from_urls`); the full form, a hosts file, is TOML or JSON::

    [[host]]
    id = "vm-1"                        # the node id (DNS-safe)
    url = "tcp://10.0.0.11:2376"
    tls = "/etc/nimbus/docker/vm-1"     # DOCKER_CERT_PATH layout: ca.pem cert.pem key.pem
    address = "10.0.0.11"              # where this gateway reaches published ports
    vcpu = 2                           # optional: the engine's CPU count by default
    memory_mb = 4096                   # optional: the engine's memory by default
    price_per_hour = 0.0416            # optional: 0 by default
    flavor = "medium"                  # optional: a name for the size, for reports
    bind = "10.0.0.11"                 # optional: where the VM publishes container ports
                                       #   (default: `address` if it is an IP, else all)
"""

from __future__ import annotations

import builtins
import ipaddress
import json
import re
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from invoker.nodes.model import Flavor, NoCapacity, Node
from invoker.nodes.placement import NodeState
from invoker.providers.base import NodeUsage, NotResizable

HOST_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


class HostsFileError(ValueError):
    """The hosts file is unreadable or wrong; the message names the host and field."""


@dataclass(frozen=True)
class DockerHost:
    """One VM's Docker engine."""

    id: str
    url: str
    tls_dir: Path | None = None
    address: str = "127.0.0.1"
    vcpu: float | None = None  # None: ask the engine
    memory_mb: int | None = None
    price_per_hour: float = 0.0
    flavor: str = ""
    bind: str = ""  # where the VM publishes container ports; "" = `address` if an IP

    @property
    def bind_address(self) -> str:
        """The VM-side address container ports are published on."""
        if self.bind:
            return self.bind
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            return "0.0.0.0"  # a name (or a NAT address) cannot be bound: all interfaces
        return self.address

    @property
    def local(self) -> bool:
        """A unix-socket engine is on this machine: containers can share host directories."""
        return self.url.startswith("unix://")

    def flavor_of(self) -> Flavor:
        """The node size this host offers (capacity must be known by now)."""
        if self.vcpu is None or self.memory_mb is None:
            raise ValueError(f"host {self.id}: capacity not known yet")
        name = self.flavor or f"{self.vcpu:g}cpu-{self.memory_mb}mb"
        return Flavor(name, self.vcpu, self.memory_mb, self.price_per_hour)


def _field(entry: dict[str, Any], where: str, name: str, kind: type, required: bool) -> Any:
    value = entry.get(name)
    if value is None:
        if required:
            raise HostsFileError(f"{where}: `{name}` is required")
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise HostsFileError(f"{where}: `{name}` must be a {kind.__name__}")
    return value


def _parse_host(entry: Any, index: int, base: Path) -> DockerHost:
    where = f"host #{index + 1}"
    if not isinstance(entry, dict):
        raise HostsFileError(f"{where}: must be a table")
    host_id = _field(entry, where, "id", str, True)
    where = f"host {host_id!r}"
    if not HOST_ID.fullmatch(host_id):
        raise HostsFileError(f"{where}: `id` must be 1-32 lowercase letters, digits or dashes")
    url = _field(entry, where, "url", str, True)
    parsed = urlparse(url)
    if parsed.scheme not in ("tcp", "unix") or (parsed.scheme == "tcp" and not parsed.hostname):
        raise HostsFileError(f"{where}: `url` must be tcp://HOST:PORT or unix:///path")
    tls = _field(entry, where, "tls", str, False)
    tls_dir = None
    if tls is not None:
        tls_dir = (base / tls).resolve()
        missing = [f for f in TLS_FILES if not (tls_dir / f).is_file()]
        if missing:
            raise HostsFileError(f"{where}: `tls` dir {tls_dir} lacks {', '.join(missing)}")
    elif parsed.scheme == "tcp" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        # An engine API without TLS on a network is root on that VM for anyone who can reach it.
        raise HostsFileError(f"{where}: `tls` is required for a remote tcp:// engine")
    address = _field(entry, where, "address", str, False) or parsed.hostname or "127.0.0.1"
    vcpu = _field(entry, where, "vcpu", float, False)
    memory_mb = _field(entry, where, "memory_mb", int, False)
    if vcpu is not None and vcpu <= 0:
        raise HostsFileError(f"{where}: `vcpu` must be positive")
    if memory_mb is not None and memory_mb < 128:
        raise HostsFileError(f"{where}: `memory_mb` must be at least 128")
    price = _field(entry, where, "price_per_hour", float, False) or 0.0
    if price < 0:
        raise HostsFileError(f"{where}: `price_per_hour` must not be negative")
    flavor = _field(entry, where, "flavor", str, False) or ""
    bind = _field(entry, where, "bind", str, False) or ""
    if bind:
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            raise HostsFileError(f"{where}: `bind` must be an IP address") from None
    return DockerHost(host_id, url, tls_dir, address, vcpu, memory_mb, price, flavor, bind)


def parse_docker_hosts(data: Any, base: Path) -> list[DockerHost]:
    """Hosts from a parsed file (`{"host": [...]}`); relative TLS dirs are under `base`."""
    entries = data.get("host") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise HostsFileError("the hosts file needs at least one [[host]] entry")
    hosts = [_parse_host(entry, i, base) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for host in hosts:
        if host.id in seen:
            raise HostsFileError(f"host {host.id!r}: `id` is listed twice")
        seen.add(host.id)
    return hosts


def load_docker_hosts(path: Path) -> list[DockerHost]:
    """Read a TOML (or, by its .json suffix, JSON) hosts file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HostsFileError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise HostsFileError(f"{path}: {exc}") from exc
    return parse_docker_hosts(data, path.parent)


def hosts_from_urls(urls: str, cert_path: Path | None = None) -> list[DockerHost]:
    """Hosts from a comma-separated list of DOCKER_HOST URLs, named vm-1, vm-2, ...

    The short form of a hosts file, as the docker CLI takes engines: every ``tcp://``
    engine uses the TLS material in `cert_path` (DOCKER_CERT_PATH), and each engine's
    size is read from it.
    """
    entries: list[dict[str, Any]] = []
    for url in (u.strip() for u in urls.split(",")):
        if not url:
            continue
        entry: dict[str, Any] = {"id": f"vm-{len(entries) + 1}", "url": url}
        if cert_path is not None and url.startswith("tcp://"):
            entry["tls"] = str(cert_path)
        entries.append(entry)
    return parse_docker_hosts({"host": entries}, Path.cwd())


def listed_hosts(
    hosts_file: Path | None, urls: str, cert_path: Path | None = None
) -> list[DockerHost]:
    """The engines a deployment lists: its hosts file, else its DOCKER_HOST URLs.

    The one place a configured list is read, by the driver at start-up and by `nimbus
    serve` before it starts anything. When every host gives its size, the flavor names
    are checked too, so a wrong list fails here rather than when nodes are enlisted.
    """
    if hosts_file is not None:
        hosts = load_docker_hosts(hosts_file)
    elif urls:
        hosts = hosts_from_urls(urls, cert_path)
    else:
        raise HostsFileError(
            "vm_provider docker-hosts needs its engines: --docker-hosts FILE or a "
            "comma-separated list of DOCKER_HOST URLs"
        )
    if all(h.vcpu is not None and h.memory_mb is not None for h in hosts):
        host_flavors(hosts)
    return hosts


def host_flavors(hosts: Sequence[DockerHost]) -> tuple[Flavor, ...]:
    """The distinct node sizes the hosts offer, in file order.

    A flavor name stands for one size and price: hosts that share a name and differ in
    either are an error, or a smaller engine could be enlisted for a bigger node's load.
    """
    out: dict[str, Flavor] = {}
    for host in hosts:
        flavor = host.flavor_of()
        known = out.setdefault(flavor.name, flavor)
        if known != flavor:
            raise HostsFileError(
                f"host {host.id!r}: flavor {flavor.name!r} is {flavor.vcpu:g} vCPU, "
                f"{flavor.memory_mb} MB at {flavor.price_per_hour:g}/h here but "
                f"{known.vcpu:g} vCPU, {known.memory_mb} MB at {known.price_per_hour:g}/h on "
                "another host: give different sizes different names"
            )
    return tuple(out.values())


def with_capacity(host: DockerHost, info: dict[str, Any]) -> DockerHost:
    """Fill in what the file left out from the engine's `docker info`."""
    vcpu = host.vcpu if host.vcpu is not None else float(info.get("NCPU") or 1)
    memory = host.memory_mb
    if memory is None:
        memory = int(info.get("MemTotal") or 0) // 2**20
    if memory < 128:
        raise HostsFileError(f"host {host.id!r}: its engine reports {memory} MB of memory")
    return replace(host, vcpu=vcpu, memory_mb=memory)


class DockerHostsProvider:
    """Enlists engines from a fixed list as nodes and hands them back when released.

    `prepare(host_id)` runs before a node is ready (the driver copies the runtime image to
    the engine there), so the first container on a new node pays no image transfer.
    """

    name = "docker-hosts"
    unplaced_ok = False
    enforced = True  # each node is a whole VM: its kernel enforces the limits

    def __init__(
        self,
        hosts: Sequence[DockerHost],
        clock: Callable[[], float],
        prepare: Callable[[str], Awaitable[None]],
    ) -> None:
        self._hosts = {h.id: h for h in hosts}
        self._clock = clock
        self._prepare = prepare
        self._nodes: dict[str, Node] = {}

    async def list(self) -> builtins.list[Node]:
        """Enlisted nodes not released."""
        return [n for n in self._nodes.values() if n.state is not NodeState.RELEASED]

    def _free_host(self, flavor: Flavor) -> DockerHost | None:
        free = [
            h
            for h in self._hosts.values()
            if h.id not in self._nodes or self._nodes[h.id].state is NodeState.RELEASED
        ]
        for host in free:
            if host.flavor_of().name == flavor.name:
                return host
        for host in free:  # any engine at least as big will do
            if host.vcpu is not None and host.memory_mb is not None:
                if host.vcpu >= flavor.vcpu and host.memory_mb >= flavor.memory_mb:
                    return host
        return None

    async def provision(self, flavor: Flavor) -> Node:
        """Enlist a free engine of this size; NoCapacity when every engine is in use."""
        host = self._free_host(flavor)
        if host is None:
            raise NoCapacity(
                f"all {len(self._hosts)} Docker hosts of the list are in the pool "
                f"(none free of size {flavor.name})"
            )
        node = Node(id=host.id, flavor=host.flavor_of(), created_at=self._clock())
        self._nodes[host.id] = node
        try:
            await self._prepare(host.id)
        except Exception:
            del self._nodes[host.id]
            raise
        node.mark_ready(self._clock())
        return node

    async def release(self, node_id: str) -> None:
        """Hand the engine back to the free list (its containers are gone by now)."""
        self._nodes[node_id].mark_released(self._clock())

    async def resize(self, node: Node, vcpu: float, memory_mb: int) -> None:
        """Refused: each node is a whole machine whose size is what it is."""
        raise NotResizable(
            f"node {node.id} is a Docker host with a fixed size; add or remove hosts instead"
        )

    def usage(self, node_id: str) -> NodeUsage | None:
        """Docker hosts are not read here: hot spots are judged by the books."""
        return None

    def cgroup_parent(self, node_id: str) -> str | None:
        """Containers on a VM take its engine's default cgroup parent."""
        return None

    def cleanup(self) -> None:
        """Nothing of ours outlives a node on the host (the driver removes orphans)."""
