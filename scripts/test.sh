#!/usr/bin/env bash
# Install what the tests need (from the project's files), lint and type-check the package,
# then run the whole suite (arguments go to pytest). A lint or type error stops here, before
# the tests, with the tool's own list of what to fix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
echo "test: ruff check (lint; configuration in pyproject.toml)"
if ! .venv/bin/python -m ruff check; then
    echo "test: ruff found the problems above (many are fixed by: .venv/bin/python -m ruff check --fix)" >&2
    exit 1
fi
echo "test: mypy (types of voice_common, wyoming_stt, wyoming_tts, broker)"
if ! .venv/bin/python -m mypy; then
    echo "test: mypy found the type errors above" >&2
    exit 1
fi
# Two workers, each test file on one of them (its module's servers start once): the suite
# spends much of its time waiting on model loads and socket round trips.
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
