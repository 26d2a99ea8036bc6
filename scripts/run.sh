#!/usr/bin/env bash
# Quick start: install everything, then run the STT and TTS services and the MQTT bridge on
# the bundled default models. Configure them with environment variables (STT_*, TTS_*,
# BROKER_*; see README) or their config files. Ctrl-C (or SIGTERM) stops them all cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

mqtt_host="${BROKER_MQTT_HOST:-127.0.0.1}"
mqtt_port="${BROKER_MQTT_PORT:-1883}"
broker_args=(--config config/broker.toml --stt tcp://127.0.0.1:10300 --tts tcp://127.0.0.1:10200)
if ! python - "$mqtt_host" "$mqtt_port" <<'PY'
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
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop INT TERM

python -m wyoming_stt --config config/stt.toml & pids+=($!)
python -m wyoming_tts --config config/tts.toml & pids+=($!)
python -m broker "${broker_args[@]}" & pids+=($!)
echo "run: wyoming-stt on tcp://0.0.0.0:10300, wyoming-tts on tcp://0.0.0.0:10200, MQTT bridge on $mqtt_host:$mqtt_port (prefix voice/)"
wait -n "${pids[@]}" || true
stop
