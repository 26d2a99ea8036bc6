#!/usr/bin/env bash
# Quick start: install everything, then run the services on the bundled default models.
# Ctrl-C (or SIGTERM) stops them all cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop INT TERM

python -m wyoming_stt --config config/stt.toml "$@" & pids+=($!)
echo "wyoming-stt on tcp://0.0.0.0:10300"
wait -n "${pids[@]}" || true
stop
