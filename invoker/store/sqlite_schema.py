"""The SQLite store's tables: what `sqlite.SqliteStore` creates when it opens.

Every statement is idempotent (IF NOT EXISTS), so opening an existing store is safe;
columns added since a store was made are added on open.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS functions (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    runtime TEXT NOT NULL,
    handler TEXT NOT NULL,
    code_sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    code_kind TEXT NOT NULL,
    code_size INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    timeout_s REAL NOT NULL,
    concurrency INTEGER NOT NULL,
    env TEXT NOT NULL,
    network INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (tenant, name)
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
    start REAL,
    end REAL,
    duration_ms REAL,
    init_ms REAL,
    wait_ms REAL,
    cold_start INTEGER,
    memory_mb INTEGER NOT NULL,
    node TEXT,
    trigger TEXT,
    peak_memory_mb REAL,
    cpu_seconds REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    dead_letter INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS activations_by_seq ON activations (seq);
CREATE TABLE IF NOT EXISTS usage (
    activation_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    start REAL NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (activation_id, attempt)
);
CREATE TABLE IF NOT EXISTS queue (
    activation_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    args TEXT NOT NULL,
    trigger TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    claimed_by TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (state, not_before, created);
CREATE INDEX IF NOT EXISTS queue_fair ON queue (state, tenant, not_before, created);
CREATE TABLE IF NOT EXISTS tenant_limits (
    tenant TEXT PRIMARY KEY,
    concurrency INTEGER,
    rate_per_s REAL,
    burst INTEGER,
    backlog INTEGER,
    dropped_events INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS triggers (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    secret_hash TEXT UNIQUE,
    last_fire REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS rules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    trigger TEXT NOT NULL,
    function TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX IF NOT EXISTS rules_by_trigger ON rules (tenant, trigger);
CREATE INDEX IF NOT EXISTS usage_by_tenant ON usage (tenant, start);
CREATE INDEX IF NOT EXISTS usage_by_start ON usage (start);
CREATE TABLE IF NOT EXISTS keepalive (
    policy TEXT NOT NULL,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (policy, tenant, function)
);
CREATE TABLE IF NOT EXISTS node_leases (
    id TEXT PRIMARY KEY,
    flavor TEXT NOT NULL,
    vcpu REAL NOT NULL,
    memory_mb INTEGER NOT NULL,
    price_per_hour TEXT NOT NULL,
    up_at REAL NOT NULL,
    down_at REAL
);
"""
