# Shared by ensure-docker-host2.sh and stop-docker-host2.sh (sourced, not run): where the
# second Docker engine lives, and how to find its processes.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are for the scripts that source this file

port="${NIMBUS_HOST2_PORT:-23760}"
certs="${NIMBUS_HOST2_CERTS:-/var/lib/nimbus-docker2-certs}"
data_root=/var/lib/nimbus-docker2
exec_root=/var/run/nimbus-docker2
pidfile=/var/run/nimbus-docker2.pid
# dockerd's managed containerd writes its config here and passes it as `--config <this>`.
containerd_toml="$exec_root/containerd/containerd.toml"

# Pid of a live process (not a zombie nobody reaped) named $1 with the exact argument $2.
# Both engines run a `dockerd` and a `containerd`, so the name alone cannot tell them apart.
find_proc() {
    local name="$1" arg="$2" dir state a
    local -a argv
    for dir in /proc/[0-9]*; do
        [ "$(cat "$dir/comm" 2>/dev/null)" = "$name" ] || continue
        state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "$dir/status" 2>/dev/null)"
        case "$state" in '' | Z | X) continue ;; esac
        mapfile -d '' argv 2>/dev/null <"$dir/cmdline" || continue
        for a in "${argv[@]}"; do
            if [ "$a" = "$arg" ]; then
                echo "${dir#/proc/}"
                return 0
            fi
        done
    done
    return 1
}

# The docker CLI against the second engine, bounded: a stopped or wedged engine accepts TCP
# but never answers. Set docker2_timeout before calling to change the bound (seconds).
docker2() {
    timeout "${docker2_timeout:-10}" docker --tlsverify --tlscacert "$certs/client/ca.pem" \
        --tlscert "$certs/client/cert.pem" --tlskey "$certs/client/key.pem" \
        -H "tcp://127.0.0.1:$port" "$@"
}
