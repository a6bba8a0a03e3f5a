#!/usr/bin/env bash
# Make sure a Docker engine answers, installing and starting one if needed.
# Idempotent: exits at once when `docker info` already works. Run as root
# (it may apt-get install docker.io and start dockerd); needs no stdin.
#
#   NIMBUS_DOCKERD_LOG   where dockerd logs (default /var/log/nimbus-dockerd.log)
#   NIMBUS_DOCKER_WAIT   seconds to wait for the engine (default 60)
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*"; }
die() { printf '[ensure-docker] ERROR: %s\n' "$*" >&2; exit 1; }

dockerd_log="${NIMBUS_DOCKERD_LOG:-/var/log/nimbus-dockerd.log}"
wait_s="${NIMBUS_DOCKER_WAIT:-60}"

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if engine_answers; then
    exit 0
fi

# True when a live process (not a zombie nobody reaped) has exactly this command name.
# pgrep may be absent, and a dockerd killed at the end of a session can linger as a zombie.
# Processes of the second test engine (`nimbus-docker2` in their arguments) do not count.
process_runs() {
    local name="$1" dir state
    for dir in /proc/[0-9]*; do
        [ -r "$dir/comm" ] || continue
        [ "$(cat "$dir/comm" 2>/dev/null)" = "$name" ] || continue
        # The second engine of the docker-hosts tests (ensure-docker-host2.sh) is not ours.
        tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | grep -q nimbus-docker2 && continue
        state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "$dir/status" 2>/dev/null)"
        if [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]; then
            return 0
        fi
    done
    return 1
}

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "Docker is not installed and this is not root: install docker.io or run as root"
    command -v apt-get >/dev/null 2>&1 || die "Docker is not installed and there is no apt-get to install it"
    log "installing docker.io with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends docker.io </dev/null \
        || die "apt-get install docker.io failed"
fi

if process_runs dockerd; then
    log "dockerd is running but does not answer yet; waiting"
else
    [ "$(id -u)" -eq 0 ] || die "dockerd is not running and only root can start it"
    # A dockerd or containerd that died uncleanly leaves pid files and sockets that
    # make the next start fail ("pid file found, ensure docker is not running").
    if ! process_runs containerd; then
        for stale in /var/run/docker/containerd/containerd.pid /run/containerd/containerd.pid \
                     /var/run/docker/containerd/containerd.sock /run/containerd/containerd.sock; do
            if [ -e "$stale" ]; then
                log "removing stale $stale"
                rm -f "$stale"
            fi
        done
    fi
    if [ -e /var/run/docker.pid ]; then
        log "removing stale /var/run/docker.pid"
        rm -f /var/run/docker.pid
    fi
    if [ -S /var/run/docker.sock ]; then
        rm -f /var/run/docker.sock
    fi
    mkdir -p "$(dirname "$dockerd_log")"
    log "starting dockerd (log: $dockerd_log)"
    nohup dockerd >>"$dockerd_log" 2>&1 </dev/null &
    disown || true
fi

for _ in $(seq 1 "$wait_s"); do
    if engine_answers; then
        log "Docker engine is up: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
        exit 0
    fi
    if ! process_runs dockerd; then
        die "dockerd exited; last lines of $dockerd_log:
$(tail -n 20 "$dockerd_log" 2>/dev/null)"
    fi
    sleep 1
done
die "Docker engine did not answer within ${wait_s} s; last lines of $dockerd_log:
$(tail -n 20 "$dockerd_log" 2>/dev/null)"
