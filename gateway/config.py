"""The platform's configuration: one frozen value passed to `create_app`."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.pricebook import PriceBook

MAX_CODE_BYTES = 48 * 2**20
MAX_BODY_BYTES = 72 * 2**20  # a 48 MiB zip, base64-encoded, plus JSON
MAX_EVENT_BYTES = 6 * 2**20  # like Lambda's synchronous payload limit
MAX_OBJECT_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Config:
    """Where Nimbus keeps its state and how it runs functions."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    admin_key: str = ""
    driver: str = "auto"  # auto | docker | process
    max_body_bytes: int = MAX_BODY_BYTES
    max_event_bytes: int = MAX_EVENT_BYTES
    max_code_bytes: int = MAX_CODE_BYTES
    max_object_bytes: int = MAX_OBJECT_BYTES
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
    placement_policy: str = "best-fit"
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
    price_book: PriceBook = field(default_factory=PriceBook)
    billing_step_ms: int = 1
    metrics_label_cap: int = 200
    public_metrics: bool = False  # /metrics names tenants' functions: admin key by default
    stem_cells: tuple[tuple[str, int, int], ...] = (("python:3.11", 128, 2),)
    keep_alive_policy: str = "budget"  # budget | hybrid | fixed (bench/keepalive.py)
    keep_alive_s: float = 600.0  # the TTL of the fixed policy
    reap_interval_s: float = 1.0
    max_wait_s: float = 5.0
    async_retries: int = 2
    async_backoff_s: float = 1.0
    async_lease_s: float = 30.0  # a claimed async call is this gateway's while renewed
    schedule_interval_s: float = 1.0
    pool_memory_mb: int = 0  # 0: three quarters of this machine's memory
    max_containers_per_function: int = 32
    max_in_flight_per_tenant: int = 100  # a tenant's default concurrency (admins set others)
    # Activations (results and logs) older than this are swept (0: kept forever); usage
    # records, the bill, are always kept (invoker/retention.py).
    activation_retention_days: float = 7.0
    retention_sweep_interval_s: float = 3600.0
    tenant_backlog: int = 1000  # a tenant's default async calls queued or running
    tenant_rate_per_s: float = 0.0  # a tenant's default invokes per second; 0: unlimited

    @property
    def owner(self) -> str:
        """Labels this deployment's containers: one data dir, one owner."""
        return "n" + hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "nimbus.db"


def retention_days(flag: float | None, env: Mapping[str, str]) -> float:
    """The activation retention in days: the flag, else $NIMBUS_ACTIVATION_RETENTION_DAYS,
    else 7. 0 keeps activations forever. Raises ValueError for anything else."""
    raw = flag if flag is not None else env.get("NIMBUS_ACTIVATION_RETENTION_DAYS", "7")
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"not a number of days: {raw!r}") from None
    if not math.isfinite(days) or days < 0:
        raise ValueError(f"must be 0 (keep forever) or more days, got {raw!r}")
    return days
