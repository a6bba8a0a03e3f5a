"""The invoker's composition root: driver, node pool, invoker and dispatcher, from settings.

`assembled` builds every part in order and tears them down in reverse (an exit stack, not
hand-written sequencing). The gateway opens the store (it reads it too), then enters this
context once and talks to what it yields through `invoker.operations.Operations` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from invoker.api import FunctionSpec
from invoker.containers.balloon import BalloonConfig
from invoker.containers.keepalive import KeepAlivePolicy, keep_alive_policy_by_name
from invoker.containers.pool import PoolLimits
from invoker.dispatcher import Dispatcher, RetryPolicy
from invoker.drivers.select import make_driver
from invoker.metrics import InvokerMetrics
from invoker.nodes.hotspot import HotSpotConfig
from invoker.operations import Operations
from invoker.ownership import owner_of, ownership
from invoker.providers.local import host_memory_mb
from invoker.providers.select import end_lease, lease_local_node, open_node_pool
from invoker.runtime_client import RuntimeClient
from invoker.service import Invoker, InvokerConfig
from invoker.settings import InvokerSettings
from invoker.share import Share, Whole, container_ceiling_mb, share_of
from invoker.shared_in_flight import worker_in_flight
from invoker.step_routing import Relay, step_runner
from invoker.store.base import Store

log = logging.getLogger("nimbus.invoker")

# A unix socket path must fit in 108 bytes; container directories add about 40.
MAX_RUN_DIR_CHARS = 64


def run_dir_for(data_dir: Path) -> Path:
    """Where container sockets live: under the data dir when the path is short enough."""
    preferred = data_dir.resolve() / "run"
    if len(str(preferred)) <= MAX_RUN_DIR_CHARS:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="nimbus-run-"))


def gateway_id(data_dir: Path) -> str:
    """This gateway's id, kept in its data dir: the same across its restarts, and unlike
    the data dir's path, different from every other gateway's (async call leases use it)."""
    path = data_dir / "gateway.id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    new = f"gw-{uuid.uuid4().hex}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new + "\n")
    os.replace(tmp, path)  # whole or absent, even if we die here
    return new


def keep_alive_policy(settings: InvokerSettings) -> KeepAlivePolicy:
    """The configured policy; `fixed` takes its TTL from `keep_alive_s`."""
    if settings.keep_alive_policy == "fixed":
        return keep_alive_policy_by_name("fixed", ttl_s=settings.keep_alive_s)
    return keep_alive_policy_by_name(settings.keep_alive_policy)


@dataclass(frozen=True)
class Wiring:
    """What the assembly needs from outside the invoker's settings."""

    store: Store
    run_dir: Path
    registry: CollectorRegistry
    token_for: Callable[[FunctionSpec, float], str]
    local_price_per_hour: str = "0"  # the price of this machine as a node, for the books
    backlog_for: Callable[[str], int | None] = lambda tenant: None  # no limit
    prepare: Callable[[Invoker], Awaitable[None]] | None = None
    """Runs once the invoker has started, before the dispatcher claims any call."""
    step_relay: Relay | None = None
    """With several workers, how a sequence's step reaches its function's owner."""


@contextlib.asynccontextmanager
async def assembled(settings: InvokerSettings, wiring: Wiring) -> AsyncIterator[Operations]:
    """Start the invoker's parts; yield the gateway's view of them; stop them in reverse."""
    store = wiring.store
    async with contextlib.AsyncExitStack() as stack:
        # Last out: let the lease writes that closing the node pool queued reach the store.
        stack.push_async_callback(asyncio.sleep, 0)
        driver, k8s_client, fleet = await asyncio.to_thread(make_driver, settings, wiring.run_dir)
        stack.push_async_callback(driver.close)
        client = RuntimeClient()
        stack.push_async_callback(client.close)
        share = worker_share(settings, host_memory_mb())
        nodes = await open_node_pool(store, settings, share, k8s_client, fleet)
        node = "local"
        if nodes is not None:
            stack.push_async_callback(nodes.close)
        elif settings.machine_lease:  # the supervisor's, for every worker: not ours to end
            node = settings.machine_lease
        else:
            lease = await lease_local_node(store, wiring.local_price_per_hour)
            stack.push_async_callback(end_lease, store, lease)
            node = lease.id
        invoker_metrics = InvokerMetrics(wiring.registry, label_cap=settings.metrics_label_cap)
        watch_share(wiring.registry, share, local_nodes=settings.vm_provider == "local")
        invoker = Invoker(
            driver,
            client,
            store,
            _invoker_config(settings, share, wiring.run_dir, node),
            metrics=invoker_metrics,
            keep_alive=keep_alive_policy(settings),
            token_for=wiring.token_for,
            nodes=nodes,
        )
        # With several workers, a tenant's calls in flight count in all of them.
        in_flight = worker_in_flight(settings.data_dir, settings.worker, settings.workers)
        if in_flight is not None:
            stack.callback(in_flight.close)
            invoker.pool.count_in_flight_in(in_flight)
        removed = await invoker.start()
        stack.push_async_callback(invoker.close)
        if removed:
            log.info("removed %d containers left by a previous run", removed)
        if wiring.prepare is not None:
            await wiring.prepare(invoker)
        owners = ownership(settings.worker, settings.workers)
        step = step_runner(invoker.invoke, wiring.step_relay, owners)  # steps in their owners
        # Each worker of `nimbus serve --workers N` leases its own async calls.
        leases = gateway_id(settings.data_dir) + (f"-w{settings.worker}" if settings.worker else "")
        dispatcher = Dispatcher(
            store,
            invoker,
            policy=RetryPolicy(retries=settings.async_retries, backoff_s=settings.async_backoff_s),
            billing_step_ms=settings.billing_step_ms,
            owner=leases,
            lease_s=settings.async_lease_s,
            backlog_for=wiring.backlog_for,
            ownership=owners,
            step=step,
        )
        requeued = await dispatcher.start()
        stack.push_async_callback(dispatcher.close)
        if requeued:
            log.info("requeued %d async calls a previous run had in flight", requeued)
        invoker_metrics.watch(
            invoker.container_states,
            nodes=nodes.gauges if nodes is not None else list,
            queue_depth=lambda: dispatcher.depth,
            packing=nodes.packing if nodes is not None else lambda: (0, None),
            memory=nodes.memory_gauges if nodes is not None else list,
            heat=invoker.hot_spots.gauges if invoker.hot_spots is not None else list,
        )
        yield Operations(
            store, invoker, dispatcher, version_retention=settings.version_retention, step=step
        )


def worker_share(
    settings: InvokerSettings, machine_memory_mb: int, worker: str | None = None
) -> Share:
    """This process's share of the machine (or worker `worker`'s): all of it, or one
    worker's part of it."""
    whole = Whole(
        host_memory_mb=machine_memory_mb,
        pool_memory_mb=settings.pool_memory_mb,
        min_nodes=settings.min_nodes,
        max_nodes=settings.max_nodes,
        stem_cells=settings.stem_cells,
    )
    return share_of(whole, settings.worker if worker is None else worker, settings.workers)


def owner_ceiling_mb(settings: InvokerSettings, function: str) -> tuple[int, int] | None:
    """With several workers, (the worker owning `function`, the most memory one of its
    containers can get in that worker's share); None for a single process."""
    if ownership(settings.worker, settings.workers) is None:
        return None
    owner = owner_of(function, settings.workers)
    share = worker_share(settings, host_memory_mb(), str(owner))
    return owner, container_ceiling_mb(share, local_nodes=settings.vm_provider == "local")


def watch_share(registry: CollectorRegistry, share: Share, *, local_nodes: bool) -> None:
    """`nimbus_worker_share`: what this process may use of the machine, so an operator
    sees each worker's part (/metrics labels gauges by worker) and that they add up."""
    gauge = Gauge(
        "nimbus_worker_share",
        "This worker's share of the machine (memory in MB, node counts, stem cells)",
        ["resource"],
        registry=registry,
    )
    gauge.labels("pool_memory_mb").set(share.pool_memory_mb)
    if local_nodes:  # the other providers' nodes are not this machine's memory
        gauge.labels("node_memory_mb").set(share.node_memory_mb)
    gauge.labels("min_nodes").set(share.min_nodes)
    gauge.labels("max_nodes").set(share.max_nodes)
    gauge.labels("stem_cells").set(sum(count for _, _, count in share.stem_cells))


def _invoker_config(
    settings: InvokerSettings, share: Share, run_dir: Path, node: str
) -> InvokerConfig:
    limits = PoolLimits(
        memory_mb=share.pool_memory_mb,
        max_per_function=settings.max_containers_per_function,
        max_in_flight_per_tenant=settings.max_in_flight_per_tenant,
        max_wait_s=settings.max_wait_s,
    )
    return InvokerConfig(
        owner=settings.owner,
        limits=limits,
        billing_step_ms=settings.billing_step_ms,
        node=node,
        stem_cells=share.stem_cells,
        reap_interval_s=settings.reap_interval_s,
        api_socket_dir=str(run_dir / "api"),
        balloon=BalloonConfig(idle_grace_s=settings.balloon_idle_grace_s)
        if settings.balloon
        else None,
        hot_spots=hot_spot_config(settings),
    )


def hot_spot_config(settings: InvokerSettings) -> HotSpotConfig | None:
    """The hot-spot thresholds, or None when mitigation is off."""
    if not settings.hot_spot_mitigation:
        return None
    return HotSpotConfig(
        hot_above=settings.hot_spot_above,
        cool_below=settings.hot_spot_below,
        window_s=settings.hot_spot_window_s,
        cool_window_s=settings.hot_spot_cool_window_s,
        min_residence_s=settings.hot_spot_min_residence_s,
    )
