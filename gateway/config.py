"""The platform's configuration: one frozen value passed to `create_app`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.pricebook import PriceBook
from invoker.settings import InvokerSettings

MAX_CODE_BYTES = 48 * 2**20
MAX_BODY_BYTES = 72 * 2**20  # a 48 MiB zip, base64-encoded, plus JSON
MAX_EVENT_BYTES = 6 * 2**20  # like Lambda's synchronous payload limit
MAX_OBJECT_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Config(InvokerSettings):
    """Where Nimbus keeps its state and how it runs functions: the invoker's settings and
    what only the HTTP side needs."""

    host: str = "127.0.0.1"
    port: int = 8080
    admin_key: str = ""
    max_body_bytes: int = MAX_BODY_BYTES
    max_event_bytes: int = MAX_EVENT_BYTES
    max_code_bytes: int = MAX_CODE_BYTES
    max_object_bytes: int = MAX_OBJECT_BYTES
    price_book: PriceBook = field(default_factory=PriceBook)
    public_metrics: bool = False  # /metrics names tenants' functions: admin key by default
    schedule_interval_s: float = 1.0
    # Activations (results and logs) older than this are swept (0: kept forever); usage
    # records, the bill, are always kept (invoker/retention.py).
    activation_retention_days: float = 7.0
    retention_sweep_interval_s: float = 3600.0
    tenant_backlog: int = 1000  # a tenant's default async calls queued or running
    tenant_rate_per_s: float = 0.0  # a tenant's default invokes per second; 0: unlimited
    # What one public web function takes from the open internet: a token bucket per function.
    web_rate_per_s: float = 50.0
    web_burst: int = 100

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
