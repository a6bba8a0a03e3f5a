#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1 with the test role and database,
# installing and starting Debian's cluster if needed. Idempotent; run as root, needs no stdin.
# The Postgres store's tests then use postgresql://nimbus:nimbus@127.0.0.1:5432/nimbus_test.
#
#   NIMBUS_PG_PORT   the port to find the server on (default 5432)
#   NIMBUS_PG_WAIT   seconds to wait for the server (default 60)
set -euo pipefail

log() { printf '[ensure-postgres] %s\n' "$*"; }
die() { printf '[ensure-postgres] ERROR: %s\n' "$*" >&2; exit 1; }

port="${NIMBUS_PG_PORT:-5432}"
wait_s="${NIMBUS_PG_WAIT:-60}"
role=nimbus
password=nimbus
database=nimbus_test

answers() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p "$port" -t 2; }

# psql as the postgres superuser over the local socket (peer authentication).
as_postgres() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@" </dev/null)
}

ensure_role_and_database() {
    if ! id postgres >/dev/null 2>&1 || ! command -v runuser >/dev/null 2>&1 \
        || ! as_postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
        # A server we do not manage (another host's socket, a container): usable only if
        # the role and database are already there.
        if PGPASSWORD="$password" psql -X -h 127.0.0.1 -p "$port" -U "$role" -d "$database" \
            -tAc 'SELECT 1' </dev/null >/dev/null 2>&1; then
            log "role $role and database $database answer on 127.0.0.1:$port"
            return 0
        fi
        die "a server answers on 127.0.0.1:$port but not as the local postgres superuser, and $role@$database cannot log in"
    fi
    if [ "$(as_postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" = "1" ]; then
        log "role $role exists"
    else
        log "creating role $role"
        as_postgres -c "CREATE ROLE $role LOGIN"
    fi
    # Always (re)set: a role created by hand without a password could not log in over TCP.
    as_postgres -c "ALTER ROLE $role LOGIN PASSWORD '$password'"
    if [ "$(as_postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'")" = "1" ]; then
        log "database $database exists"
    else
        log "creating database $database owned by $role"
        as_postgres -c "CREATE DATABASE $database OWNER $role"
    fi
    as_postgres -c "ALTER DATABASE $database OWNER TO $role"
    log "ready: postgresql://$role:$password@127.0.0.1:$port/$database"
}

if answers; then
    log "PostgreSQL answers on 127.0.0.1:$port"
    ensure_role_and_database
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "PostgreSQL does not answer on 127.0.0.1:$port and only root can install or start it"

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and there is no apt-get"
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null || die "apt-get update failed"
    apt-get install -y -q postgresql </dev/null || die "apt-get install postgresql failed"
else
    log "postgresql is installed"
fi

version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$version" ] || [ ! -d "/etc/postgresql/$version/main" ]; then
    # The package may be configured not to create a cluster (create_main_cluster = false).
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    [ -n "$version" ] || die "no PostgreSQL version under /usr/lib/postgresql"
    log "creating cluster $version/main"
    pg_createcluster "$version" main </dev/null >/dev/null
fi
conf="/etc/postgresql/$version/main/postgresql.conf"
cluster_port="$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "$conf" | tail -n 1)"
if [ -n "$cluster_port" ] && [ "$cluster_port" != "$port" ]; then
    die "cluster $version/main listens on port $cluster_port, not $port (set NIMBUS_PG_PORT)"
fi
data_dir="$(sed -nE "s/^[[:space:]]*data_directory[[:space:]]*=[[:space:]]*'([^']*)'.*/\1/p" "$conf" | tail -n 1)"
data_dir="${data_dir:-/var/lib/postgresql/$version/main}"

# A server killed without a shutdown leaves postmaster.pid behind, and a new start refuses
# while it names a live process: remove it only when that process is gone (or not postgres).
postmaster_runs=false
pid_file="$data_dir/postmaster.pid"
if [ -e "$pid_file" ]; then
    pid="$(head -n 1 "$pid_file" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && grep -qE '^(postgres|postmaster)$' "/proc/$pid/comm"; then
        postmaster_runs=true
        log "postmaster $pid is running but does not answer yet; waiting"
    else
        log "removing stale $pid_file (pid ${pid:-?} is not a running postgres)"
        rm -f "$pid_file"
    fi
fi

if ! $postmaster_runs; then
    # /run may be a fresh tmpfs: the socket directory must exist, owned by postgres.
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    log "starting cluster $version/main"
    pg_ctlcluster "$version" main start </dev/null \
        || die "pg_ctlcluster $version main start failed; last lines of its log:
$(tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" 2>/dev/null)"
fi

for _ in $(seq 1 "$wait_s"); do
    if answers; then
        log "PostgreSQL $version answers on 127.0.0.1:$port"
        ensure_role_and_database
        exit 0
    fi
    sleep 1
done
die "PostgreSQL did not answer on 127.0.0.1:$port within ${wait_s} s; last lines of its log:
$(tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" 2>/dev/null)"
