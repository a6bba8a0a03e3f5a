"""`create_app(config)`: the one place that wires the platform together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry

from gateway import metrics
from gateway.auth import hash_key, load_token_secret, mint_activation_token
from gateway.buckets import EventSink, setup_buckets
from gateway.config import Config
from gateway.keys import ADMIN_HASH, CONFIG, PLATFORM, RUN_DIR, TOKEN_SECRET, Platform
from gateway.middleware import authenticate, errors, guard
from gateway.quotas import QUOTAS, Quotas
from gateway.routes import (
    activations,
    api_keys,
    billing,
    functions,
    health,
    invoke,
    limits,
    tenants,
    triggers,
)
from gateway.routes import (
    nodes as node_routes,
)
from gateway.server import connection_limits
from invoker.api import RUNTIMES, FunctionSpec
from invoker.dispatcher import Dispatcher, RetryPolicy
from invoker.docker_hosts import (
    DockerHostsProvider,
    host_flavors,
    hosts_from_urls,
    load_docker_hosts,
)
from invoker.drivers.base import ContainerDriver
from invoker.drivers.fleet import Fleet, open_fleet
from invoker.k8s_nodes import KubernetesNodeProvider
from invoker.k8s_pool import ClusterProvider
from invoker.keepalive import KeepAlivePolicy, policy_by_name
from invoker.metrics import InvokerMetrics
from invoker.nodes import LocalProvider, NodePool, NodePoolConfig, PoolProvider, host_memory_mb
from invoker.placement import Limits as PlacementLimits
from invoker.placement import policy_by_name as placement_policy_by_name
from invoker.pool import Limits
from invoker.retention import RetentionSweeper
from invoker.runtime_client import RuntimeClient
from invoker.service import Invoker, InvokerConfig
from invoker.store.base import NodeLease, Store
from invoker.store.factory import open_store
from invoker.tenant_limits import LimitDefaults
from invoker.vmpool import Flavor, Node

log = logging.getLogger("nimbus.gateway")

# A unix socket path must fit in 108 bytes; container directories add about 40.
MAX_RUN_DIR_CHARS = 64


def run_dir_for(data_dir: Path) -> Path:
    """Where container sockets live: under the data dir when the path is short enough."""
    preferred = data_dir.resolve() / "run"
    if len(str(preferred)) <= MAX_RUN_DIR_CHARS:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="nimbus-run-"))


def make_driver(
    config: Config, run_dir: Path
) -> tuple[ContainerDriver, ApiClient | None, Fleet | None]:
    """The container driver by name; `auto` takes Docker wherever an engine answers.

    Blocking (it pings Docker and hashes the runtime recipes): call it off the loop.
    Returns the Kubernetes API client too, which the cluster node provider shares, and
    with the `docker-hosts` provider the fleet of engines, which it enlists as nodes.
    """
    from invoker.drivers.docker import DockerDriver, engine_answers
    from invoker.drivers.process import ProcessDriver
    from invoker.images import image_tag, runtime_dir

    if config.vm_provider == "docker-hosts":
        return _docker_hosts_driver(config, run_dir)
    name = config.driver
    if name == "auto":
        name = "docker" if engine_answers() else "process"
        if name == "process":
            log.warning("no Docker engine answers: using the process driver (no isolation)")
    if name == "docker":
        # Hash the runtime recipes once: image_tag reads every file of the runtime.
        tags = {runtime: image_tag(runtime) for runtime in RUNTIMES}
        return DockerDriver(run_dir, tags.__getitem__), None, None
    if name == "process":
        return ProcessDriver(run_dir, runtime_dir() / "python" / "proxy.py"), None, None
    if name == "kubernetes":
        from invoker.drivers.kubernetes import (
            KubernetesDriver,
            KubernetesDriverConfig,
            load_api_client,
        )

        client = load_api_client()
        k8s = KubernetesDriverConfig(
            namespace=config.k8s_namespace, runtime_class=config.k8s_runtime_class or None
        )
        prefix = config.k8s_image_prefix
        driver = KubernetesDriver(client, config=k8s, image_for=lambda rt: prefix + rt)
        return driver, client, None
    raise ValueError(f"unknown driver {name!r}; choose auto, docker, process or kubernetes")


def _docker_hosts_driver(config: Config, run_dir: Path) -> tuple[ContainerDriver, None, Fleet]:
    """One engine per VM from the hosts file, each reached by its own driver."""
    from invoker.images import image_tag

    if config.driver not in ("auto", "docker"):
        raise ValueError("vm_provider docker-hosts runs containers with Docker: driver docker")
    if config.docker_hosts_file is not None:
        hosts = load_docker_hosts(config.docker_hosts_file)
    elif config.docker_hosts_urls:
        hosts = hosts_from_urls(config.docker_hosts_urls, config.docker_cert_path)
    else:
        raise ValueError(
            "vm_provider docker-hosts needs its engines: --docker-hosts FILE or a "
            "comma-separated list of DOCKER_HOST URLs"
        )
    tags = {runtime: image_tag(runtime) for runtime in RUNTIMES}
    fleet = open_fleet(hosts, run_dir, config.owner, tags.__getitem__, tuple(RUNTIMES))
    return fleet.driver, None, fleet


async def _platform(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.store_url, config.data_dir)
    await store.open()
    driver, k8s_client, fleet = await asyncio.to_thread(make_driver, config, app[RUN_DIR])
    client = RuntimeClient()
    nodes = await _node_pool(store, config, k8s_client, fleet)
    lease = await _lease_local_node(store, config) if nodes is None else None
    invoker_metrics = InvokerMetrics(app[metrics.REGISTRY], label_cap=config.metrics_label_cap)
    limits = Limits(
        memory_mb=config.pool_memory_mb or host_memory_mb() * 3 // 4,
        max_per_function=config.max_containers_per_function,
        max_in_flight_per_tenant=config.max_in_flight_per_tenant,
        max_wait_s=config.max_wait_s,
    )
    invoker = Invoker(
        driver,
        client,
        store,
        InvokerConfig(
            owner=config.owner,
            limits=limits,
            billing_step_ms=config.billing_step_ms,
            node=lease.id if lease is not None else "local",
            stem_cells=config.stem_cells,
            reap_interval_s=config.reap_interval_s,
            api_socket_dir=str(app[RUN_DIR] / "api"),
        ),
        metrics=invoker_metrics,
        keep_alive=keep_alive_policy(config),
        token_for=_token_minter(app[TOKEN_SECRET]),
        nodes=nodes,
    )
    removed = await invoker.start()
    if removed:
        log.info("removed %d containers left by a previous run", removed)
    await app[QUOTAS].start(store, invoker.pool)  # tenants' limits before any call runs
    dispatcher = Dispatcher(
        store,
        invoker,
        policy=RetryPolicy(retries=config.async_retries, backoff_s=config.async_backoff_s),
        billing_step_ms=config.billing_step_ms,
        owner=gateway_id(config.data_dir),
        lease_s=config.async_lease_s,
        backlog_for=app[QUOTAS].backlog,
    )
    requeued = await dispatcher.start()
    if requeued:
        log.info("requeued %d async calls a previous run had in flight", requeued)
    invoker_metrics.watch(
        invoker.container_states,
        nodes=nodes.gauges if nodes is not None else list,
        queue_depth=lambda: dispatcher.depth,
        packing=nodes.packing if nodes is not None else lambda: (0, None),
    )
    app[PLATFORM].bind(store, invoker, dispatcher)
    schedules = asyncio.create_task(
        app[PLATFORM].triggers.schedule_loop(config.schedule_interval_s), name="nimbus-schedules"
    )
    retention = RetentionSweeper(
        store, config.activation_retention_days, config.retention_sweep_interval_s
    )
    retention.start()
    try:
        yield
    finally:
        await retention.close()
        schedules.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await schedules
        await dispatcher.close()
        await app[QUOTAS].close()
        await invoker.close()
        await client.close()
        await driver.close()
        if nodes is not None:
            await nodes.close()
        if lease is not None:
            await store.save_node_lease(replace(lease, down_at=time.time()))
        await asyncio.sleep(0)  # let the lease writes the node pool queued run
        await store.close()


async def _node_pool(
    store: Store, config: Config, k8s_client: ApiClient | None, fleet: Fleet | None
) -> NodePool | None:
    """The node pool over the configured VM provider; each node's life is a lease.

    `local` splits this machine into cgroup nodes; `kubernetes` packs pods onto the
    cluster's nodes (the driver must be kubernetes); `docker-hosts` enlists engines from
    a fixed list; `none` runs without a pool.
    """
    if config.vm_provider == "none":
        return None
    flavors = tuple(
        Flavor(name, vcpu, memory_mb, float(price))
        for name, vcpu, memory_mb, price in config.node_flavors
    )
    max_nodes = config.max_nodes
    if fleet is not None:
        flavors = host_flavors(fleet.hosts)
        max_nodes = min(max_nodes, len(fleet.hosts))
    prices = {f.name: str(f.price_per_hour) for f in flavors}
    wall_at = time.time() - time.monotonic()  # node times are monotonic; leases are wall clock
    tasks: set[asyncio.Task[None]] = set()

    # Engines of a list and cluster nodes keep their names when enlisted again (or seen
    # again after a restart): each enlistment is its own lease, or a later one would reopen
    # an earlier one and bill the time in between.
    recurring = config.vm_provider in ("docker-hosts", "kubernetes")

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

    provider: PoolProvider
    if config.vm_provider == "kubernetes":
        if k8s_client is None:
            raise ValueError("vm_provider kubernetes needs the kubernetes driver")
        provider = ClusterProvider(KubernetesNodeProvider(k8s_client), time.monotonic)
    elif config.vm_provider == "docker-hosts" and fleet is not None:
        provider = DockerHostsProvider(fleet.hosts, time.monotonic, fleet.prepare)
    elif config.vm_provider == "local":
        provider = LocalProvider(
            config.owner,
            time.monotonic,
            host_memory_mb=host_memory_mb() * 9 // 10,
            id_prefix=uuid.uuid4().hex[:4] + "-",
        )
    else:
        raise ValueError(
            f"unknown vm_provider {config.vm_provider!r}: local, docker-hosts, kubernetes, none"
        )
    limits = PlacementLimits(
        cpu_overcommit=config.cpu_overcommit, hot_spot_threshold=config.hot_spot_threshold
    )
    pool = NodePool(
        provider,
        placement_policy_by_name(
            config.placement_policy,
            cpu_overcommit=config.cpu_overcommit,
            hot_spot_threshold=config.hot_spot_threshold,
        ),
        limits,
        NodePoolConfig(
            flavors=flavors,
            min_nodes=config.min_nodes,
            max_nodes=max_nodes,
            consolidate_below=config.consolidate_below,
            min_node_age_s=config.min_node_age_s,
        ),
        clock=time.monotonic,
        on_change=record,
    )
    await pool.start()
    return pool


async def _lease_local_node(store: Store, config: Config) -> NodeLease:
    """This machine as the one node (VM) of a deployment without a VM pool.

    A lease a crashed run left open is closed now: the machine was not serving since.
    """
    now = time.time()
    for old in await store.node_leases(0.0, now):
        if old.flavor == "local" and old.down_at is None:
            await store.save_node_lease(replace(old, down_at=now))
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    lease = NodeLease(
        id=f"local-{uuid.uuid4().hex[:8]}",
        flavor="local",
        vcpu=float(os.cpu_count() or 1),
        memory_mb=int(memory_mb),
        price_per_hour=str(config.price_book.flavors.get("local", Decimal(0))),
        up_at=now,
    )
    await store.save_node_lease(lease)
    return lease


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


def keep_alive_policy(config: Config) -> KeepAlivePolicy:
    """The configured policy; `fixed` takes its TTL from `keep_alive_s`."""
    if config.keep_alive_policy == "fixed":
        return policy_by_name("fixed", ttl_s=config.keep_alive_s)
    return policy_by_name(config.keep_alive_policy)


def _token_minter(secret: bytes) -> Callable[[FunctionSpec, float], str]:
    """Tokens valid for the call and one to two minutes more: enough to finish, short if
    leaked. One token per tenant and timeout is reused for a minute (minting costs more
    than a warm call's whole bookkeeping)."""
    cache: dict[tuple[str, float], tuple[float, str]] = {}

    def mint(spec: FunctionSpec, now: float) -> str:
        key = (spec.tenant, spec.timeout_s)
        hit = cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if len(cache) > 10_000:
            cache.clear()
        token = mint_activation_token(secret, spec.tenant, now + spec.timeout_s + 120)
        cache[key] = (now + 60, token)
        return token

    return mint


def create_app(config: Config, *, on_object_event: EventSink | None = None) -> web.Application:
    """The gateway application with the invoker and store it needs, started on app startup.

    `on_object_event` also hears every bucket object event (bucket triggers always do).
    """
    app = web.Application(
        middlewares=[metrics.measure, errors, guard, authenticate],
        client_max_size=config.max_body_bytes,  # a backstop: routes cap bodies (requests.py)
        handler_args=connection_limits(),
    )
    app[CONFIG] = config
    app[PLATFORM] = Platform()
    app[QUOTAS] = Quotas(
        LimitDefaults(
            concurrency=config.max_in_flight_per_tenant,
            rate_per_s=config.tenant_rate_per_s or None,
            backlog=config.tenant_backlog,
        )
    )
    registry = CollectorRegistry()
    app[metrics.REGISTRY] = registry
    app[metrics.HTTP_DURATION] = metrics.http_histogram(registry)
    app[metrics.HTTP_CHILDREN] = {}
    app[ADMIN_HASH] = hash_key(config.admin_key) if config.admin_key else ""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app[TOKEN_SECRET] = load_token_secret(config.data_dir / "token.key")
    app[RUN_DIR] = run_dir_for(config.data_dir)
    app.cleanup_ctx.append(_platform)
    for module in (
        health,
        tenants,
        api_keys,
        limits,
        functions,
        invoke,
        activations,
        billing,
        metrics,
        triggers,
        node_routes,
    ):
        app.add_routes(module.routes)

    async def object_event(tenant: str, event: dict[str, Any]) -> None:
        if on_object_event is not None:
            await on_object_event(tenant, event)
        await app[PLATFORM].triggers.object_event(tenant, event)

    setup_buckets(app, config.data_dir, object_event, config.max_object_bytes)
    return app
