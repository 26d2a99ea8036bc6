#!/usr/bin/env bash
# Quick start: install everything, then run the STT and TTS services and the MQTT bridge on
# the bundled default models. Configure them with environment variables (STT_*, TTS_*,
# BROKER_*; see README) or their config files. Ctrl-C (or SIGTERM) stops them all cleanly.
# Prints "run: ready — ..." with every address once all three answer.
#   RUN_SETUP=0    skip scripts/setup.sh (already installed)
#   RUN_PYTHON=... the interpreter with the project installed (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${RUN_SETUP:-1}" == 0 ]] || bash scripts/setup.sh
py="${RUN_PYTHON:-.venv/bin/python}"

# Where the services listen, resolved from config/*.toml and the environment as they do it.
eval "$("$py" scripts/services.py addresses)"

mqtt_host="${BROKER_MQTT_HOST:-127.0.0.1}"
mqtt_port="${BROKER_MQTT_PORT:-1883}"
broker_args=(--config config/broker.toml --stt "$stt_client" --tts "$tts_client")
if ! "$py" - "$mqtt_host" "$mqtt_port" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
then
    echo "run: no MQTT broker on $mqtt_host:$mqtt_port; starting the bridge's embedded one (loopback only, not for production)"
    broker_args+=(--embedded-mqtt --mqtt-host 127.0.0.1 --mqtt-port "$mqtt_port" --mqtt-protocol 3.1.1)
fi

pids=()
waiter=""
stop() {
    trap - INT TERM
    kill -TERM "${pids[@]}" $waiter 2>/dev/null || true
    wait
}
trap 'stop; exit 0' INT TERM

echo "run: starting wyoming-stt ($stt_uri), wyoming-tts ($tts_uri) and the MQTT bridge; the first start assembles and checks the bundled models"
"$py" -m wyoming_stt --config config/stt.toml & pids+=($!)
"$py" -m wyoming_tts --config config/tts.toml & pids+=($!)
"$py" -m broker "${broker_args[@]}" & pids+=($!)
"$py" scripts/services.py wait "${pids[@]}" -- "${broker_args[@]}" & waiter=$!
wait -n "${pids[@]}" || true
echo "run: a service stopped; stopping the others" >&2
stop
exit 1
