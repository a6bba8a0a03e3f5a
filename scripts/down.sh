#!/usr/bin/env bash
# Stops the platform `make up` started (its containers are removed on the way out).
set -euo pipefail
cd "$(dirname "$0")/.."
PID_FILE=.nimbus/nimbus.pid
if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PID_FILE")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break; sleep 0.2; done
    echo "Nimbus stopped"
else
    echo "Nimbus is not running"
fi
rm -f "$PID_FILE"
