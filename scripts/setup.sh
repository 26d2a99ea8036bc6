#!/usr/bin/env bash
# Install everything from the project's own files: system packages (when missing),
# a virtual environment in .venv, the project and its bundled models.
# Usage: scripts/setup.sh [test]   ("test" also installs what the test suite needs)
# Progress goes to stdout ("setup: ..."); pip's full output to .venv/setup-pip.log.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
if [[ "${1:-}" == "test" ]]; then
    command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || need_apt+=(mosquitto)
    command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
    command -v openssl >/dev/null || need_apt+=(openssl)
    # The web console's browser tests: Debian's chromium and its chromedriver.
    [[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
    [[ -x /usr/bin/chromedriver ]] || need_apt+=(chromium-driver)
fi
if (( ${#need_apt[@]} )); then
    echo "setup: [1/3] installing system packages: ${need_apt[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
else
    echo "setup: [1/3] system packages: present"
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup: Python 3.11+ is required (found $("$PYTHON" --version))" >&2; exit 1; }
if [[ -x .venv/bin/python ]]; then
    echo "setup: [2/3] virtual environment: .venv"
else
    echo "setup: [2/3] creating the virtual environment .venv"
    "$PYTHON" -m venv .venv
fi

extras="multilingual,embedded"
pins=()
if [[ "${1:-}" == "test" ]]; then
    # The tests also run the cloning backend (a tiny Qwen3-TTS model on the CPU): the `clone`
    # extra with torch pinned to the CPU wheel (a plain torch range would pull GBs of CUDA).
    extras="multilingual,embedded,test,clone"
    pins=("torch==2.13.0")
fi
log=.venv/setup-pip.log
echo "setup: [3/3] installing the project and its bundled models (the first time: a few minutes, ~1.5 GB)"
# One line per package pip fetches, then a summary; everything else goes to the log.
if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e ".[${extras}]" "${pins[@]}" 2>&1 \
    | tee "$log" | awk '
        /^Collecting / { n++; printf "setup:   %d. %s\n", n, $2; fflush() }
        /^Installing collected packages/ {
            count = split(substr($0, index($0, ":") + 1), names, ",")
            printf "setup:   installing %d package%s ...\n", count, count == 1 ? "" : "s"; fflush() }
        END { if (!n) print "setup:   nothing new to fetch" }'; then
    echo "setup: pip failed; the last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
if [[ "${1:-}" == "test" ]]; then
    # qwen-tts without its declared dependencies (gradio, torchaudio, sox: never run on the
    # 12 Hz path; docs/voices.md); the ones it runs came with the `clone` extra.
    if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off --no-deps \
            "qwen-tts==0.1.1" >>"$log" 2>&1; then
        echo "setup: pip failed installing qwen-tts; the last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
fi
echo "setup: done"
