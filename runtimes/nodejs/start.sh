#!/bin/sh
# Start the proxy with a heap sized to the container. Node 18 sizes its heap from the
# host's memory, so in a 128 MB container V8 would let garbage grow until the kernel's
# OOM killer stops the function, where a collection would have freed it. Leave ~48 MB
# for node itself and the young generation, give the old generation 3/4 of the rest.
limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null \
    || cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo max)
case "$limit" in
    '' | max | *[!0-9]*) exec node /opt/nimbus/proxy.js ;;
esac
mb=$(( (limit / 1048576 - 48) * 3 / 4 ))
if [ "$mb" -lt 16 ]; then mb=16; fi
if [ "$mb" -gt 16384 ]; then exec node /opt/nimbus/proxy.js; fi  # no real limit
exec node --max-old-space-size="$mb" /opt/nimbus/proxy.js
