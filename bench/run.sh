#!/usr/bin/env bash
# One command: reference servers (pinned, PyPI) vs ours on the bundled models -> one table + charts.
#   bash bench/run.sh [--quick] [--skip-stt] [--skip-tts] [--no-beam5] [--alone] [--charts-to DIR]
#                     [--stt-sets SETS] [--mem-limit-mb N]      (all options: --help)
# Needs the project venv (.venv, from `bash scripts/setup.sh`) and espeak-ng; installs the
# `bench` extra of pyproject.toml (matplotlib for the charts, onnx for bench/tts_floors.py) into that venv when missing.
# BENCH_PYTHON=/path/to/python uses another checkout's venv; BENCH_REF_VENV=DIR another
# checkout's reference venv (bench/.venv-ref).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${BENCH_PYTHON:-.venv/bin/python}
if [[ ! -x $PY ]]; then
    echo "no .venv: run 'bash scripts/setup.sh' first" >&2
    exit 2
fi
command -v espeak-ng >/dev/null || { echo "espeak-ng missing: apt-get install -y espeak-ng" >&2; exit 2; }
if ! "$PY" -c 'import matplotlib, onnx' 2>/dev/null; then
    # The extra's requirements only, not `pip install -e .[bench]`: that would reinstall the
    # project itself, and re-point an editable install that another checkout may share.
    mapfile -t reqs < <("$PY" -c 'import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')
    echo "installing the bench extra (${reqs[*]}) into $("$PY" -c 'import sys; print(sys.prefix)')" >&2
    "$PY" -m pip install -q --disable-pip-version-check "${reqs[@]}"
fi
exec "$PY" -m bench.run "$@"
