#!/usr/bin/env bash
# Runs the whole suite against the real Docker engine; no tests collected is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "==> pytest (real Docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo none))"
.venv/bin/pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
