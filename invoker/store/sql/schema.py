"""The store's tables, written once for both dialects (each fills in its column types).

Every statement is idempotent (IF NOT EXISTS), so opening an existing store is safe. A
dialect's schema module adds its own indexes and brings a store made by an older version
up to date (`invoker.store.sqlite.schema`, `invoker.store.postgres.schema`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ColumnTypes:
    """A dialect's names for the column types the tables use (TEXT and INTEGER are the
    same in both)."""

    real: str  # a float8
    blob: str  # bytes
    boolean: str
    false: str  # the boolean false, as a default
    bigint: str
    seq: str  # the activations' `seq`: unique, growing with each new activation


# A deploy's columns, first in both `functions` and `function_versions` (a version is a
# copy of its function's row as a deploy left it).
_DEPLOYED = """\
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    runtime TEXT NOT NULL,
    handler TEXT NOT NULL,
    code_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    code_kind TEXT NOT NULL,
    code_size INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    timeout_s {real} NOT NULL,
    concurrency INTEGER NOT NULL,
    env TEXT NOT NULL,
    network {boolean} NOT NULL,"""

_TABLES = """
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    data {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS functions (
{deployed}
    created {real} NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX IF NOT EXISTS functions_by_code ON functions (code_sha256);
CREATE TABLE IF NOT EXISTS function_versions (
{deployed}
    params TEXT NOT NULL,
    secret_params TEXT NOT NULL,
    web {boolean} NOT NULL,
    web_raw {boolean} NOT NULL,
    web_secret_hash TEXT,
    components TEXT,
    annotations TEXT NOT NULL,
    created {real} NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE INDEX IF NOT EXISTS function_versions_by_code ON function_versions (code_sha256);
CREATE TABLE IF NOT EXISTS function_aliases (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    weight {real} NOT NULL,
    created {real} NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (tenant, name, alias, version)
);
CREATE TABLE IF NOT EXISTS activations (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    logs TEXT NOT NULL,
    start {real},
    "end" {real},
    duration_ms {real},
    init_ms {real},
    wait_ms {real},
    cold_start {boolean},
    memory_mb INTEGER NOT NULL,
    node TEXT,
    trigger TEXT,
    peak_memory_mb {real},
    cpu_seconds {real},
    attempts INTEGER NOT NULL DEFAULT 0,
    dead_letter {boolean} NOT NULL DEFAULT {false},
    seq {seq},
    size {bigint}
);
CREATE TABLE IF NOT EXISTS usage (
    activation_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    start {real} NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (activation_id, attempt)
);
CREATE INDEX IF NOT EXISTS usage_by_tenant ON usage (tenant, start);
CREATE INDEX IF NOT EXISTS usage_by_start ON usage (start);
CREATE TABLE IF NOT EXISTS queue (
    activation_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    args TEXT NOT NULL,
    trigger TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before {real} NOT NULL,
    state TEXT NOT NULL,
    created {real} NOT NULL,
    claimed_by TEXT,
    lease_until {real},
    owner_worker INTEGER
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (state, not_before, created);
CREATE INDEX IF NOT EXISTS queue_fair ON queue (state, tenant, not_before, created);
CREATE TABLE IF NOT EXISTS queue_workers (
    worker INTEGER PRIMARY KEY,
    seen {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_limits (
    tenant TEXT PRIMARY KEY,
    concurrency INTEGER,
    rate_per_s {real},
    burst INTEGER,
    backlog INTEGER,
    dropped_events {bigint} NOT NULL DEFAULT 0,
    updated {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS triggers (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    secret_hash TEXT UNIQUE,
    last_fire {real},
    created {real} NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS rules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    trigger TEXT NOT NULL,
    function TEXT NOT NULL,
    enabled {boolean} NOT NULL,
    created {real} NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX IF NOT EXISTS rules_by_trigger ON rules (tenant, trigger);
CREATE TABLE IF NOT EXISTS keepalive (
    policy TEXT NOT NULL,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    state TEXT NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (policy, tenant, function)
);
CREATE TABLE IF NOT EXISTS node_leases (
    id TEXT PRIMARY KEY,
    flavor TEXT NOT NULL,
    vcpu {real} NOT NULL,
    memory_mb INTEGER NOT NULL,
    price_per_hour TEXT NOT NULL,
    up_at {real} NOT NULL,
    down_at {real}
);
CREATE TABLE IF NOT EXISTS tenant_keys (
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created {real} NOT NULL,
    PRIMARY KEY (tenant, key_id)
);
CREATE TABLE IF NOT EXISTS store_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# The queue's columns added since it was first made: the lease (`claimed_by`, `lease_until`)
# and the worker owning the call's function (`owner_worker`; NULL: any worker's).
_QUEUE_COLUMNS = (
    ("claimed_by", "TEXT"),
    ("lease_until", "{real}"),
    ("owner_worker", "INTEGER"),
)


def queue_columns(types: ColumnTypes) -> list[tuple[str, str]]:
    """The queue's later columns, in one dialect's types, for `ALTER TABLE`."""
    return [(name, kind.format(**asdict(types))) for name, kind in _QUEUE_COLUMNS]


# The functions table's columns added since it was first made (name, definition): every
# store, new or old, gains them through its dialect's upgrade step, so they are listed once.
_FUNCTION_COLUMNS = (
    ("params", "TEXT NOT NULL DEFAULT '{{}}'"),
    ("secret_params", "TEXT NOT NULL DEFAULT '[]'"),
    ("web", "{boolean} NOT NULL DEFAULT {false}"),
    ("web_raw", "{boolean} NOT NULL DEFAULT {false}"),
    ("web_secret_hash", "TEXT"),
    ("components", "TEXT"),  # a sequence's function names (JSON); NULL: code runs
    ("annotations", "TEXT NOT NULL DEFAULT '{{}}'"),
    ("image", "TEXT"),  # the function's own container image; NULL: a runtime runs its code
    ("image_protocol", "TEXT"),  # how that image is spoken to ("nimbus" or "http")
)
VERSIONED_LATER = ("image", "image_protocol")
"""Later columns `function_versions` lacked when first made: it gains them as `functions`
does (the others were in it from the start)."""


def function_columns(types: ColumnTypes) -> list[tuple[str, str]]:
    """The functions table's later columns, in one dialect's types, for `ALTER TABLE`."""
    return [(name, kind.format(**asdict(types))) for name, kind in _FUNCTION_COLUMNS]


def later_columns(types: ColumnTypes) -> list[tuple[str, str, str]]:
    """(table, column, definition) of every later column of `functions` and
    `function_versions`, for `ALTER TABLE ... ADD COLUMN` before the versions backfill."""
    versioned = [(n, k) for n, k in function_columns(types) if n in VERSIONED_LATER]
    return [("functions", n, k) for n, k in function_columns(types)] + [
        ("function_versions", n, k) for n, k in versioned
    ]


VERSION_COLUMNS = (
    "tenant, name, version, runtime, handler, code_sha256, code_kind, code_size, memory_mb, "
    "timeout_s, concurrency, env, network, params, secret_params, web, web_raw, "
    "web_secret_hash, components, annotations, image, image_protocol"
)
"""What a version copies of its function's row as a deploy left it (then `created`)."""

# A function deployed before versions existed (or by an older gateway sharing the
# database) gets its current row as its version; run after the functions' later columns.
VERSIONS_BACKFILL = f"""
INSERT INTO function_versions ({VERSION_COLUMNS}, created)
    SELECT {VERSION_COLUMNS}, updated FROM functions f
    WHERE NOT EXISTS (SELECT 1 FROM function_versions v
        WHERE v.tenant = f.tenant AND v.name = f.name AND v.version = f.version)
    ON CONFLICT DO NOTHING;
"""

# A tenant made before `tenant_keys` existed gets a key row for the hash it was made with.
KEYS_BACKFILL = """
INSERT INTO tenant_keys (tenant, key_id, key_hash, created)
    SELECT name, 'k' || substr(key_hash, 1, 15), key_hash, created FROM tenants t
    WHERE NOT EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant = t.name)
    ON CONFLICT DO NOTHING;
"""


def tables(types: ColumnTypes) -> str:
    """Every table and its shared indexes, in one dialect's column types."""
    names = asdict(types)
    return _TABLES.format(deployed=_DEPLOYED.format(**names), **names)
