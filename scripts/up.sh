#!/usr/bin/env bash
# Starts Nimbus in the background on 127.0.0.1:8080 (or NIMBUS_PORT) and deploys `hello`.
# Idempotent: a platform already running from this checkout is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.nimbus
DATA="$STATE/data"
PORT="${NIMBUS_PORT:-8080}"
URL="http://127.0.0.1:$PORT"
mkdir -p "$STATE"

running() { [ -f "$STATE/nimbus.pid" ] && kill -0 "$(cat "$STATE/nimbus.pid")" 2>/dev/null; }
healthy() { curl -fsS "$URL/healthz" >/dev/null 2>&1; }

if running && healthy; then
    echo "==> Nimbus already running (pid $(cat "$STATE/nimbus.pid"))"
else
    if healthy; then
        echo "error: something else answers on $URL; stop it or set NIMBUS_PORT" >&2
        exit 1
    fi
    echo "==> starting Nimbus on $URL (log: $STATE/nimbus.log)"
    nohup .venv/bin/nimbus serve --host 127.0.0.1 --port "$PORT" --data-dir "$DATA" \
        >"$STATE/nimbus.log" 2>&1 </dev/null &
    echo $! >"$STATE/nimbus.pid"
    for _ in $(seq 1 100); do
        healthy && break
        if ! running; then
            echo "error: Nimbus exited; last log lines:" >&2
            tail -20 "$STATE/nimbus.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    healthy || { echo "error: Nimbus did not answer on $URL" >&2; exit 1; }
fi

KEY="${NIMBUS_ADMIN_KEY:-$(cat "$DATA/admin.key")}"
export NIMBUS_URL="$URL" NIMBUS_API_KEY="$KEY"
echo "==> deploying the sample function 'hello'"
.venv/bin/nimbus deploy hello functions/hello/main.py --handler main.handler
echo "==> invoking it"
.venv/bin/nimbus invoke hello '{"name": "Nimbus"}'
cat <<MSG

Nimbus is running on $URL (pid $(cat "$STATE/nimbus.pid"); stop it with: make down)
Admin key: $KEY

Invoke the sample function:
  curl -s -X POST $URL/v1/functions/hello/invoke -H "Authorization: Bearer $KEY" -d '{"name": "you"}'

Or with the CLI:
  export NIMBUS_URL=$URL NIMBUS_API_KEY=$KEY
  .venv/bin/nimbus invoke hello '{"name": "you"}'
MSG
