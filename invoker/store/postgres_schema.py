"""The PostgreSQL store's tables: what `postgres.PostgresStore` creates when it opens.

Every statement is idempotent (IF NOT EXISTS), so opening an existing store is safe;
columns added since a store was made are added on open.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    data BYTEA NOT NULL
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
    timeout_s DOUBLE PRECISION NOT NULL,
    concurrency INTEGER NOT NULL,
    env TEXT NOT NULL,
    network BOOLEAN NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX IF NOT EXISTS functions_by_code ON functions (code_sha256);
CREATE TABLE IF NOT EXISTS activations (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    logs TEXT NOT NULL,
    start DOUBLE PRECISION,
    "end" DOUBLE PRECISION,
    duration_ms DOUBLE PRECISION,
    init_ms DOUBLE PRECISION,
    wait_ms DOUBLE PRECISION,
    cold_start BOOLEAN,
    memory_mb INTEGER NOT NULL,
    node TEXT,
    trigger TEXT,
    peak_memory_mb DOUBLE PRECISION,
    cpu_seconds DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    dead_letter BOOLEAN NOT NULL DEFAULT FALSE,
    seq BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX IF NOT EXISTS activations_by_tenant ON activations (tenant, function, seq);
CREATE INDEX IF NOT EXISTS activations_by_tenant_seq ON activations (tenant, seq);
CREATE TABLE IF NOT EXISTS usage (
    activation_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    start DOUBLE PRECISION NOT NULL,
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
    not_before DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    claimed_by TEXT,
    lease_until DOUBLE PRECISION
);
ALTER TABLE queue ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE queue ADD COLUMN IF NOT EXISTS lease_until DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS queue_due ON queue (state, not_before, created);
CREATE INDEX IF NOT EXISTS queue_fair ON queue (state, tenant, not_before, created);
CREATE TABLE IF NOT EXISTS tenant_limits (
    tenant TEXT PRIMARY KEY,
    concurrency INTEGER,
    rate_per_s DOUBLE PRECISION,
    burst INTEGER,
    backlog INTEGER,
    dropped_events BIGINT NOT NULL DEFAULT 0,
    updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS triggers (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    secret_hash TEXT UNIQUE,
    last_fire DOUBLE PRECISION,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS rules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    trigger TEXT NOT NULL,
    function TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX IF NOT EXISTS rules_by_trigger ON rules (tenant, trigger);
CREATE TABLE IF NOT EXISTS keepalive (
    policy TEXT NOT NULL,
    tenant TEXT NOT NULL,
    function TEXT NOT NULL,
    state TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (policy, tenant, function)
);
CREATE TABLE IF NOT EXISTS node_leases (
    id TEXT PRIMARY KEY,
    flavor TEXT NOT NULL,
    vcpu DOUBLE PRECISION NOT NULL,
    memory_mb INTEGER NOT NULL,
    price_per_hour TEXT NOT NULL,
    up_at DOUBLE PRECISION NOT NULL,
    down_at DOUBLE PRECISION
);
"""
