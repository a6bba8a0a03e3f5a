#!/usr/bin/env bash
# Remove every container on the second Docker engine (see ensure-docker-host2.sh) and stop
# it: SIGTERM, wait, then SIGKILL. The primary engine is never touched: processes are picked
# by their arguments (data root, containerd config), never by name. Idempotent; run as root.
#
#   NIMBUS_HOST2_PORT    TCP port on 127.0.0.1 (default 23760)
#   NIMBUS_HOST2_CERTS   TLS material (default /var/lib/nimbus-docker2-certs)
#   NIMBUS_DOCKER_WAIT   seconds to wait after SIGTERM before SIGKILL (default 30)
#   NIMBUS_HOST2_KEEP_CONTAINERS=1  stop the engine as `systemctl stop docker` would: its
#                        containers are stopped by dockerd but not removed (a restart test)
set -euo pipefail

log() { printf '[stop-docker-host2] %s\n' "$*"; }

wait_s="${NIMBUS_DOCKER_WAIT:-30}"
# shellcheck source=scripts/host2-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/host2-common.sh"

docker2_timeout=60  # removing containers may take a while

# SIGTERM the process named $1 with argument $2, wait, then SIGKILL. A dead process may
# linger as a zombie (nobody reaps it here), which find_proc already counts as gone.
stop_proc() {
    local name="$1" arg="$2" pid
    pid="$(find_proc "$name" "$arg")" || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$wait_s"); do
        find_proc "$name" "$arg" >/dev/null || return 0
        sleep 1
    done
    log "$name (pid $pid) ignored SIGTERM for ${wait_s} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
}

if [ "${NIMBUS_HOST2_KEEP_CONTAINERS:-0}" = 1 ]; then
    log "keeping the engine's containers (NIMBUS_HOST2_KEEP_CONTAINERS=1)"
elif find_proc dockerd "--data-root=$data_root" >/dev/null; then
    if ids="$(docker2 ps -aq 2>/dev/null)"; then
        if [ -n "$ids" ]; then
            log "removing $(wc -w <<<"$ids") container(s)"
            # shellcheck disable=SC2086  # one id per word
            docker2 rm -f $ids >/dev/null
        fi
    else
        # Containers it could not remove are stopped by dockerd itself at its next start.
        log "the engine does not answer; stopping it without removing its containers"
    fi
fi
stop_proc dockerd "--data-root=$data_root"
# dockerd stops its managed containerd (or it dies with dockerd by SIGKILL); make sure.
stop_proc containerd "$containerd_toml"
rm -f "$pidfile" "$exec_root/docker.sock"
# An engine killed with SIGKILL leaves its containers running under their shims, out of
# reach without it: the next dockerd start stops them (there is no live-restore).
if find_proc containerd-shim "$exec_root/containerd/containerd.sock" >/dev/null; then
    log "WARNING: containers of an engine that died still run; run scripts/ensure-docker-host2.sh" \
        "(it stops them) and then this script again to remove them"
fi
log "the second Docker engine is stopped"
