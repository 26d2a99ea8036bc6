#!/usr/bin/env bash
# One command: reference servers (pinned, PyPI) vs ours on the bundled models -> one table.
#   bash bench/run.sh [--quick] [--skip-stt] [--skip-tts] [--no-beam5] [--mem-limit-mb N]
# Needs the project venv (.venv, from `bash scripts/setup.sh`) and espeak-ng.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [[ ! -x $PY ]]; then
    echo "no .venv: run 'bash scripts/setup.sh' first" >&2
    exit 2
fi
command -v espeak-ng >/dev/null || { echo "espeak-ng missing: apt-get install -y espeak-ng" >&2; exit 2; }
exec "$PY" -m bench.run "$@"
