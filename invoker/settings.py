"""How the invoker runs: the settings it is assembled from (`invoker.assemble`).

The gateway's `Config` extends these with what only the HTTP side needs, so one settings
object serves both rooms and the invoker never imports the gateway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from invoker.runtimes import default_stem_cells


@dataclass(frozen=True)
class InvokerSettings:
    """Where the platform keeps its state and how it runs, places and queues functions."""

    data_dir: Path
    driver: str = "auto"  # auto | docker | process | kubernetes
    # VM pool: `local` splits this machine into cgroup-enforced nodes; `none` uses it whole.
    vm_provider: str = "local"  # local | docker-hosts | kubernetes | none
    docker_hosts_file: Path | None = None  # the engines of vm_provider docker-hosts...
    docker_hosts_urls: str = ""  # ...or a comma-separated list of DOCKER_HOST URLs
    docker_cert_path: Path | None = None  # TLS material for those URLs (DOCKER_CERT_PATH)
    node_flavors: tuple[tuple[str, float, int, str], ...] = (
        # name, vCPU, memory MB, USD per hour (AWS t3 list prices for the same sizes)
        ("small", 1.0, 2048, "0.0208"),
        ("medium", 2.0, 4096, "0.0416"),
        ("large", 2.0, 8192, "0.0832"),
    )
    min_nodes: int = 1
    max_nodes: int = 4
    placement_policy: str = "auto"  # best-fit; worst-fit with memory overcommit on
    cpu_overcommit: float = 4.0
    hot_spot_threshold: float | None = (
        0.9  # a node this full takes a container only if no other can
    )
    consolidate_below: float = 0.5
    min_node_age_s: float = 60.0
    # Kubernetes (driver "kubernetes"; k8s/base/configmap.yaml sets these as NIMBUS_K8S_*)
    k8s_namespace: str = "nimbus-functions"
    k8s_runtime_class: str = ""
    k8s_image_prefix: str = "nimbus/"
    store_url: str = ""  # "" = SQLite in the data dir; postgresql://... = a shared Postgres
    billing_step_ms: int = 1
    metrics_label_cap: int = 200
    # (runtime, memory MB, count) of generic containers kept started: by default each
    # runtime's count from the registry (invoker/runtimes.py). The gateway's total: with
    # several workers each keeps its part (invoker/share.py).
    stem_cells: tuple[tuple[str, int, int], ...] = default_stem_cells()
    keep_alive_policy: str = "budget"  # budget | hybrid | fixed (bench/keepalive.py)
    keep_alive_s: float = 600.0  # the TTL of the fixed policy
    reap_interval_s: float = 1.0
    max_wait_s: float = 5.0
    async_retries: int = 2
    async_backoff_s: float = 1.0
    async_lease_s: float = 30.0  # a claimed async call is this gateway's while renewed
    pool_memory_mb: int = 0  # 0: three quarters of this machine's memory (split by workers)
    max_containers_per_function: int = 32
    version_retention: int = 20  # versions kept per function, plus those an alias names
    max_in_flight_per_tenant: int = 100  # a tenant's default concurrency (admins set others)
    allow_root_images: bool = False
    """Functions' own images whose USER is root may be deployed and run as root (still
    with every capability dropped, no new privileges, a read-only root). Off: a 400."""
    # Memory ballooning and managed over-provisioning (docs/performance.md, "Ballooning").
    balloon: bool = True
    """Deflate idle warm containers to their working set + headroom (their cgroup memory
    limit), and inflate them back to `memory_mb` before their next call. Takes effect with
    the docker driver (cgroup files, else `docker update`); other drivers keep containers at
    full size. On by default: a call never runs deflated, so callers see no difference."""
    balloon_idle_grace_s: float = 2.0  # idle this long before a container is deflated
    memory_overcommit: float = 1.0
    """Admin cap per node on (sum of the containers' full memory limits) / node memory.
    1.0 (the default) is no overcommit: placement is as without ballooning. Above it (e.g.
    2.0), a node admits idle containers at their deflated size, so more warm containers
    fit, while a call still starts only when its full memory_mb fits (idle containers are
    evicted first, else the call goes elsewhere). Needs `balloon`; ignored without it."""

    # Hot-spot mitigation at run time (docs/performance.md, "Migration and hot spots").
    hot_spot_mitigation: bool = True
    """Move the containers that load a hot node most to nodes that stay cool with them
    (live migration, make-before-break: callers see no cold start and no error)."""
    hot_spot_above: float = 0.85  # a node is hot above this pressure (CPU or memory in use)...
    hot_spot_window_s: float = 30.0  # ...held this long
    hot_spot_below: float = 0.70  # cool again below this (hysteresis)...
    hot_spot_cool_window_s: float = 10.0  # ...held this long
    hot_spot_min_residence_s: float = 300.0  # a moved container stays put this long

    worker: str = ""
    """Which of `nimbus serve --workers N`'s processes this is ("" for a single one): its
    containers and async-call leases are its own, kept across its restarts."""
    workers: int = 1
    """How many processes `nimbus serve --workers N` runs (1: one): with `worker`, which
    worker owns each function's async calls (`invoker.ownership`) and what share of the
    machine's memory, nodes and stem cells is this worker's (`invoker.share`)."""
    machine_lease: str = ""
    """The open node lease of this machine that `nimbus serve --workers N`'s supervisor took
    for all its workers (vm_provider none): the books count the machine once. "": the
    invoker takes (and ends) its own."""

    @property
    def owner(self) -> str:
        """Labels this deployment's containers: one data dir (and worker), one owner."""
        base = "n" + hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]
        return f"{base}w{self.worker}" if self.worker else base
