"""What scripts/run.sh needs to know about the services it starts, resolved as they resolve it.

    python scripts/services.py addresses            shell assignments: stt_uri, tts_uri (where
                                                    they listen), stt_client, tts_client (where
                                                    the bridge reaches them)
    python scripts/services.py wait PIDS -- ARGS    wait until STT and TTS answer a Wyoming
                                                    `describe` and the bridge (started with ARGS)
                                                    is online on MQTT, then print the ready line;
                                                    exit 1 if one of PIDS exits first

The addresses come from config/stt.toml and config/tts.toml plus the STT_*/TTS_* environment,
through the services' own option tables, so the line printed is where they really are.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: Print which services are still starting this often (the first start assembles models).
PROGRESS_EVERY_S = 15.0


def service_uris() -> tuple[str, str]:
    from voice_common.settings import load
    from wyoming_stt.config import SttConfig
    from wyoming_tts.config import TtsConfig

    stt = load(SttConfig, "wyoming-stt", "", ["--config", str(REPO / "config" / "stt.toml")])
    tts = load(TtsConfig, "wyoming-tts", "", ["--config", str(REPO / "config" / "tts.toml")])
    return stt.uri, tts.uri


def client_uri(uri: str) -> str:
    """Where a local client connects to a server listening on `uri` (0.0.0.0 -> 127.0.0.1)."""
    parsed = urlparse(uri)
    if parsed.scheme != "tcp":
        return uri
    host = parsed.hostname or ""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"tcp://{'[' + host + ']' if ':' in host else host}:{parsed.port}"


async def answers_describe(uri: str) -> bool:
    from wyoming.client import AsyncClient
    from wyoming.info import Describe

    try:
        async with asyncio.timeout(5):
            async with AsyncClient.from_uri(client_uri(uri)) as client:
                await client.write_event(Describe().event())
                event = await client.read_event()
                return event is not None and event.type == "info"
    except (OSError, TimeoutError, ValueError):
        return False


def bridge_online(config) -> bool:
    """True once the bridge's retained status topic says `online` (it says `offline` on exit)."""
    import paho.mqtt.client as mqtt

    seen: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if config.mqtt_username:
        client.username_pw_set(config.mqtt_username, config.mqtt_password)
    if config.mqtt_tls:
        client.tls_set(ca_certs=config.mqtt_ca and str(config.mqtt_ca),
                       certfile=config.mqtt_cert and str(config.mqtt_cert),
                       keyfile=config.mqtt_key and str(config.mqtt_key))
        client.tls_insecure_set(config.mqtt_tls_insecure)
    client.on_connect = lambda c, *_: c.subscribe(f"{config.prefix}/status")
    client.on_message = lambda _c, _u, message: seen.append(message.payload)
    try:
        client.connect(config.mqtt_host, config.mqtt_port, keepalive=10)
    except (OSError, ValueError):
        return False
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not seen:
            client.loop(timeout=0.2)
    finally:
        client.disconnect()
    return seen[-1:] == [b"online"]


def alive(pid: int) -> bool:
    """The process runs (it is run.sh's child, not ours: a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait(pids: list[int], broker_args: list[str]) -> int:
    from broker.config import parse_config

    stt_uri, tts_uri = service_uris()
    bridge = parse_config(broker_args)
    scheme = "mqtts" if bridge.mqtt_tls else "mqtt"
    checks = {
        "stt": lambda: asyncio.run(answers_describe(stt_uri)),
        "tts": lambda: asyncio.run(answers_describe(tts_uri)),
        "bridge": lambda: bridge_online(bridge),
    }
    pending = list(checks)
    started = last_note = time.monotonic()
    while pending:
        if not all(alive(pid) for pid in pids):
            print("run: a service exited before it was ready (its error is above)", flush=True)
            return 1
        pending = [name for name in pending if not checks[name]()]
        if pending and time.monotonic() - last_note >= PROGRESS_EVERY_S:
            last_note = time.monotonic()
            print(f"run: still starting after {last_note - started:.0f} s: {', '.join(pending)}", flush=True)
        if pending:
            time.sleep(0.5)
    print(f"run: ready \u2014 stt {stt_uri}, tts {tts_uri}, bridge {scheme}://{bridge.mqtt_host}:{bridge.mqtt_port} "
          f"(prefix {bridge.prefix}/)", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["addresses"]:
        stt_uri, tts_uri = service_uris()
        for name, value in (("stt_uri", stt_uri), ("tts_uri", tts_uri),
                            ("stt_client", client_uri(stt_uri)), ("tts_client", client_uri(tts_uri))):
            print(f"{name}={shlex.quote(value)}")
        return 0
    if argv[:1] == ["wait"] and "--" in argv:
        split = argv.index("--")
        return wait([int(pid) for pid in argv[1:split]], argv[split + 1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
