#!/usr/bin/env bash
# Make sure a SECOND, independent Docker engine answers on 127.0.0.1 with mutual TLS. It
# plays "a remote VM's Docker engine" for the docker-hosts provider's integration tests and
# shares nothing with the primary engine (unix:///var/run/docker.sock): own data and exec
# roots, own managed containerd, own cgroup parent, address pool and default bridge
# (nimbus2br0), no iptables. Idempotent: exits at once when the engine already answers. Run as root.
#
#   NIMBUS_HOST2_PORT    TCP port on 127.0.0.1 (default 23760)
#   NIMBUS_HOST2_CERTS   TLS material, made once (default /var/lib/nimbus-docker2-certs);
#                        clients use DOCKER_CERT_PATH=$NIMBUS_HOST2_CERTS/client DOCKER_TLS_VERIFY=1
#   NIMBUS_DOCKER_WAIT   seconds to wait for the engine (default 60)
#
# Stop it (and remove its containers) with scripts/stop-docker-host2.sh.
set -euo pipefail

log() { printf '[ensure-docker-host2] %s\n' "$*"; }
die() { printf '[ensure-docker-host2] ERROR: %s\n' "$*" >&2; exit 1; }

wait_s="${NIMBUS_DOCKER_WAIT:-60}"
# shellcheck source=scripts/host2-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/host2-common.sh"
dockerd_log=/var/log/nimbus-dockerd2.log
bridge=nimbus2br0

engine_answers() { [ -r "$certs/client/key.pem" ] && docker2 info >/dev/null 2>&1; }

if engine_answers; then
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "only root can start the second Docker engine"
# openssl makes the TLS material and ip the bridge; a minimal machine may lack either.
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "${missing[*]} not installed and there is no apt-get"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null >/dev/null || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
for tool in dockerd docker openssl ip timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/ensure-docker.sh first)"
done

# --- TLS material: made once, reused while it is complete and consistent -----------------
certs_ok() {
    local f
    for f in ca.pem server-cert.pem server-key.pem client/ca.pem client/cert.pem client/key.pem; do
        [ -s "$certs/$f" ] || return 1
    done
    openssl verify -CAfile "$certs/ca.pem" "$certs/server-cert.pem" "$certs/client/cert.pem" >/dev/null 2>&1
}

make_certs() {
    local tmp
    mkdir -p "$certs"
    tmp="$(mktemp -d "$certs/.new.XXXXXX")"
    (
        cd "$tmp"
        umask 077
        mkdir client
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=nimbus-docker2 CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout ca-key.pem -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr
        openssl x509 -req -days 3650 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
            -CAserial ca.srl -extfile server.ext -out server-cert.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=nimbus-docker2 client" -keyout client/key.pem \
            -out client.csr
        openssl x509 -req -days 3650 -in client.csr -CA ca.pem -CAkey ca-key.pem -CAserial ca.srl \
            -extfile client.ext -out client/cert.pem
        cp ca.pem client/ca.pem
        chmod 644 ca.pem server-cert.pem client/ca.pem client/cert.pem
        chmod 755 client
    ) >"$tmp/openssl.log" 2>&1 || die "openssl failed: $(cat "$tmp/openssl.log")"
    mkdir -p "$certs/client"
    mv -f "$tmp"/ca.pem "$tmp"/ca-key.pem "$tmp"/server-cert.pem "$tmp"/server-key.pem "$certs/"
    mv -f "$tmp"/client/ca.pem "$tmp"/client/cert.pem "$tmp"/client/key.pem "$certs/client/"
    rm -rf "$tmp"
}

if ! certs_ok; then
    log "making TLS material in $certs"
    make_certs
    certs_ok || die "the TLS material just made in $certs does not verify"
fi

# --- start dockerd, unless ours is already running (then just wait for it) ---------------
if pid="$(find_proc dockerd "--data-root=$data_root")"; then
    log "dockerd (pid $pid) is running but does not answer yet; waiting"
else
    # A killed engine leaves its pid file (dockerd refuses to start: "pid file found") and
    # its managed containerd's pid file. dockerd adopts whatever live pid that file names,
    # and kills it when it cannot talk to it: if the pid was reused by the primary engine's
    # containerd, that would kill the primary's. So keep it only when it names our own
    # live containerd (dockerd then adopts it; its containers survive).
    rm -f "$pidfile" "$exec_root/docker.sock"
    if ! find_proc containerd "$containerd_toml" >/dev/null; then
        rm -f "$exec_root/containerd/containerd.pid" "$exec_root/containerd/containerd.sock" \
            "$exec_root/containerd/containerd.sock.ttrpc" "$exec_root/containerd/containerd-debug.sock"
    fi
    # A dockerd stopped while it was starting a container can exit with that container's
    # root filesystem still mounted: the next dockerd then cannot remove the container
    # ("device or resource busy") and it stays `dead` for good. Nothing uses it now.
    while read -r merged; do
        umount "$merged" 2>/dev/null || umount -l "$merged" 2>/dev/null || true
    done < <(awk -v root="$data_root/overlay2/" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo)
    if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]; then
        die "something else listens on TCP port $port: $(ss -Hltnp "sport = :$port" 2>/dev/null)"
    fi
    # An empty config file of our own: /etc/docker/daemon.json belongs to the primary engine.
    mkdir -p "$data_root" "$exec_root" "$(dirname "$dockerd_log")"
    chmod 700 "$data_root" "$exec_root"
    [ -s "$data_root/daemon.json" ] || echo '{}' >"$data_root/daemon.json"
    log "starting the second dockerd on 127.0.0.1:$port (log: $dockerd_log)"
    # --containerd is not given: with no /run/containerd/containerd.sock, dockerd starts its
    # own containerd under $exec_root/containerd (root $data_root/containerd). Its own
    # containerd namespaces keep the two engines apart even if a system containerd appears
    # there later and both engines end up on it.
    # --cgroup-parent is absolute: a relative one is taken by runc relative to its own
    # cgroup, i.e. wherever whoever ran this script happened to be.
    # --iptables=false: published ports are served by docker-proxy (the userland proxy).
    # --bridge names a bridge of our own: with --bridge=none dockerd deletes the interface
    # `docker0` at start, which is the primary engine's, and breaks every build and bridge
    # container there. For the same reason no --default-address-pool: with one, every
    # restart deletes `docker0` along with the stale default network. Without one, networks
    # get subnets that no route on this host uses yet, so the engines cannot clash.
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add "$bridge" type bridge
        ip addr add 10.214.0.1/24 dev "$bridge"
    fi
    ip link set "$bridge" up
    nohup dockerd \
        --host="tcp://127.0.0.1:$port" --host="unix://$exec_root/docker.sock" \
        --tlsverify --tlscacert="$certs/ca.pem" --tlscert="$certs/server-cert.pem" \
        --tlskey="$certs/server-key.pem" \
        --data-root="$data_root" --exec-root="$exec_root" --pidfile="$pidfile" \
        --config-file="$data_root/daemon.json" \
        --containerd-namespace=nimbus-docker2 --containerd-plugins-namespace=nimbus-docker2-plugins \
        --iptables=false --ip-masq=false --bridge="$bridge" \
        --cgroup-parent=/nimbus-docker2 \
        >>"$dockerd_log" 2>&1 </dev/null &
    disown || true
fi

deadline=$((SECONDS + wait_s))
while [ "$SECONDS" -lt "$deadline" ]; do
    if engine_answers; then
        log "second Docker engine is up on tcp://127.0.0.1:$port (DOCKER_CERT_PATH=$certs/client)"
        exit 0
    fi
    if ! find_proc dockerd "--data-root=$data_root" >/dev/null; then
        die "the second dockerd exited; last lines of $dockerd_log:
$(tail -n 20 "$dockerd_log" 2>/dev/null)"
    fi
    sleep 1
done
die "the second Docker engine did not answer within ${wait_s} s (if its TLS material changed
since it started, run scripts/stop-docker-host2.sh); last lines of $dockerd_log:
$(tail -n 20 "$dockerd_log" 2>/dev/null)"
