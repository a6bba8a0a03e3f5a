"""The node pool a deployment packs containers onto, over the VM provider its settings
name; and, without a pool, this machine as the one node whose lease the books count."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import replace

from kubernetes.client import ApiClient

from invoker.drivers.fleet import Fleet
from invoker.nodes.model import Flavor, Node
from invoker.nodes.node_pool import NodePool, NodePoolConfig
from invoker.nodes.placement import PlacementLimits, placement_policy_by_name
from invoker.providers.base import NodeProvider
from invoker.providers.docker_hosts import DockerHostsProvider, host_flavors
from invoker.providers.kubernetes import ClusterProvider
from invoker.providers.kubernetes_nodes import KubernetesNodeProvider
from invoker.providers.local import LocalProvider, host_memory_mb
from invoker.settings import InvokerSettings
from invoker.share import Share, refusal
from invoker.store.base import NodeLease, Store


def effective_placement(name: str, memory_overcommit: float) -> str:
    """PURE: the policy `auto` stands for: worst-fit when idle containers are admitted at
    their deflated size (`memory_overcommit` > 1), else best-fit. Packing deflated idle
    containers onto the fullest node piles their re-inflation onto one node, which then
    evicts or turns calls away; spreading keeps room to inflate where they are (the
    ballooning replay in docs/performance.md). Any other name is taken as it is."""
    if name != "auto":
        return name
    return "worst-fit" if memory_overcommit > 1.0 else "best-fit"


async def open_node_pool(
    store: Store,
    settings: InvokerSettings,
    share: Share,
    k8s_client: ApiClient | None,
    fleet: Fleet | None,
) -> NodePool | None:
    """The node pool over the configured VM provider; each node's life is a lease.

    `local` splits this machine into cgroup nodes (this worker's `share` of its memory
    and of the node counts); `kubernetes` packs pods onto the cluster's nodes (the driver
    must be kubernetes); `docker-hosts` enlists engines from a fixed list; `none` runs
    without a pool.
    """
    if settings.vm_provider == "none":
        return None
    refused = refusal(settings.vm_provider, settings.workers)
    if refused is not None:
        raise ValueError(refused)
    flavors = tuple(
        Flavor(name, vcpu, memory_mb, float(price))
        for name, vcpu, memory_mb, price in settings.node_flavors
    )
    max_nodes = share.max_nodes
    if fleet is not None:
        flavors = host_flavors(fleet.hosts)
        max_nodes = min(max_nodes, len(fleet.hosts))
    prices = {f.name: str(f.price_per_hour) for f in flavors}
    wall_at = time.time() - time.monotonic()  # node times are monotonic; leases are wall clock
    tasks: set[asyncio.Task[None]] = set()

    # Engines of a list and cluster nodes keep their names when enlisted again (or seen
    # again after a restart): each enlistment is its own lease, or a later one would reopen
    # an earlier one and bill the time in between.
    recurring = settings.vm_provider in ("docker-hosts", "kubernetes")

    def record(node: Node) -> None:
        up_at = wall_at + node.created_at
        lease = NodeLease(
            id=f"{node.id}@{up_at:.3f}" if recurring else node.id,
            flavor=node.flavor.name,
            vcpu=node.flavor.vcpu,
            memory_mb=node.flavor.memory_mb,
            price_per_hour=prices.get(node.flavor.name, "0"),
            up_at=up_at,
            down_at=None if node.released_at is None else wall_at + node.released_at,
        )
        task = asyncio.get_running_loop().create_task(store.save_node_lease(lease))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    provider: NodeProvider
    if settings.vm_provider == "kubernetes":
        if k8s_client is None:
            raise ValueError("vm_provider kubernetes needs the kubernetes driver")
        provider = ClusterProvider(KubernetesNodeProvider(k8s_client), time.monotonic)
    elif settings.vm_provider == "docker-hosts" and fleet is not None:
        provider = DockerHostsProvider(fleet.hosts, time.monotonic, fleet.prepare)
    elif settings.vm_provider == "local":
        provider = LocalProvider(
            settings.owner,
            time.monotonic,
            host_memory_mb=share.node_memory_mb,
            id_prefix=uuid.uuid4().hex[:4] + "-",
        )
    else:
        raise ValueError(
            f"unknown vm_provider {settings.vm_provider!r}: local, docker-hosts, kubernetes, none"
        )
    limits = PlacementLimits(
        cpu_overcommit=settings.cpu_overcommit, hot_spot_threshold=settings.hot_spot_threshold
    )
    pool = NodePool(
        provider,
        placement_policy_by_name(
            effective_placement(settings.placement_policy, settings.memory_overcommit),
            cpu_overcommit=settings.cpu_overcommit,
            hot_spot_threshold=settings.hot_spot_threshold,
        ),
        limits,
        NodePoolConfig(
            flavors=flavors,
            min_nodes=share.min_nodes,
            max_nodes=max_nodes,
            consolidate_below=settings.consolidate_below,
            min_node_age_s=settings.min_node_age_s,
            memory_overcommit=settings.memory_overcommit if settings.balloon else 1.0,
        ),
        clock=time.monotonic,
        on_change=record,
    )
    await pool.start()
    return pool


async def lease_local_node(store: Store, price_per_hour: str) -> NodeLease:
    """This machine as the one node (VM) of a deployment without a VM pool.

    A lease a crashed run left open is closed now: the machine was not serving since.
    Taken once per machine: by the process itself, or by `nimbus serve --workers N`'s
    supervisor before it forks (a worker taking its own would close the others').
    """
    now = time.time()
    for old in await store.node_leases(0.0, now):
        if old.flavor == "local" and old.down_at is None:
            await store.save_node_lease(replace(old, down_at=now))
    lease = NodeLease(
        id=f"local-{uuid.uuid4().hex[:8]}",
        flavor="local",
        vcpu=float(os.cpu_count() or 1),
        memory_mb=host_memory_mb(),
        price_per_hour=price_per_hour,
        up_at=now,
    )
    await store.save_node_lease(lease)
    return lease


async def end_lease(store: Store, lease: NodeLease) -> None:
    """Close `lease` now: the node stopped serving."""
    await store.save_node_lease(replace(lease, down_at=time.time()))
