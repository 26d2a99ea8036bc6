"""The bridge's options (flag, env twin `BROKER_*`, TOML key) and the typed limits."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

from voice_common.config import (
    DEBUG_OPTION, ConfigError, Option, existing_path, http_address, parse_bool, resolve, usage_error,
)

PREFIX = "BROKER"
MODES = ("disabled", "transcribe_only", "tts_only", "conversation")


def tcp_uri(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "tcp" or not parsed.hostname or parsed.port is None:
        raise ConfigError(f"expected tcp://HOST:PORT, got {value!r}")
    return value


def topic_prefix(value: str) -> str:
    value = value.strip().strip("/")
    if not value or any(ch in value for ch in "#+\0") or value.startswith("$"):
        raise ConfigError(f"not a usable topic prefix: {value!r}")
    return value


def reply_prefix(value: str) -> str:
    value = value.strip()
    if not value.endswith("/") or any(ch in value for ch in "#+\0") or value.startswith("$"):
        raise ConfigError(f"a reply prefix must be a topic ending in '/': {value!r}")
    return value


def default_db() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "wyoming-voice-broker" / "settings.sqlite3")


OPTIONS: list[Option] = [
    # MQTT connection
    Option("mqtt_host", "127.0.0.1", "MQTT broker host"),
    Option("mqtt_port", None, "MQTT broker port (default 1883, 8883 with --mqtt-tls)", type=int),
    Option("mqtt_protocol", "5", "MQTT protocol version", choices=("5", "3.1.1")),
    Option("mqtt_username", None, "MQTT user name"),
    Option("mqtt_password", None, "MQTT password (prefer the environment twin)"),
    Option("mqtt_client_id", None, "MQTT client id (default: voice-bridge-<hostname>-<random>)"),
    Option("mqtt_tls", False, "Connect with TLS", type=parse_bool),
    Option("mqtt_ca", None, "CA certificate file for TLS (default: system store)", type=existing_path),
    Option("mqtt_cert", None, "Client certificate file for TLS", type=existing_path),
    Option("mqtt_key", None, "Client private key file for TLS", type=existing_path),
    Option("mqtt_tls_insecure", False, "Skip the broker's host name check (testing only)", type=parse_bool),
    Option("mqtt_keepalive", 30, "MQTT keepalive in seconds", type=int),
    Option("reconnect_min", 0.5, "First reconnect delay in seconds (doubles up to --reconnect-max)", type=float),
    Option("reconnect_max", 30.0, "Longest reconnect delay in seconds", type=float),
    Option("embedded_mqtt", False,
           "Run a small MQTT 3.1.1 broker (amqtt) in this process on --mqtt-host:--mqtt-port "
           "(loopback only; for first runs, not for production)", type=parse_bool),
    # Topics
    Option("prefix", "voice", "Topic prefix of the API", type=topic_prefix),
    Option("group", None, "Share request subscriptions ($share/GROUP/...) with other bridges"),
    Option("reply_prefix", ["voice/reply/"], "Allowed MQTT v5 Response Topic prefixes",
           type=reply_prefix, multiple=True, metavar="PREFIX"),
    # Wyoming services
    Option("stt", [], "Wyoming speech-to-text service (repeatable)", type=tcp_uri, multiple=True, metavar="URI"),
    Option("tts", [], "Wyoming text-to-speech service (repeatable)", type=tcp_uri, multiple=True, metavar="URI"),
    Option("discover", None,
           "Find services via zeroconf (_wyoming._tcp.local.); default: on when no --stt/--tts",
           type=parse_bool),
    Option("health_interval", 30.0, "Seconds between service health checks (services that are down: every 2 s)", type=float),
    Option("connect_timeout", 3.0, "Seconds to connect to / describe a service", type=float),
    Option("backend_timeout", 30.0, "Seconds a service may stay silent while it owes us a result "
           "(for a transcript after stop: plus --stt-timeout-factor x the audio's seconds)", type=float),
    Option("stt_timeout_factor", 1.0, "Seconds an STT service may take for the transcript after stop, "
           "per second of audio, on top of --backend-timeout (long audio decodes slowly on a CPU)", type=float),
    Option("stt_timeout_max", 300.0, "Longest wait in seconds for a transcript after stop", type=float),
    # Sites, settings, Home Assistant
    Option("db", default_db(), "SQLite file for per-site settings"),
    Option("sites", [], "Sites announced to Home Assistant even before they have settings", multiple=True,
           metavar="SITE"),
    Option("default_mode", "transcribe_only", "Mode of a site without settings", choices=MODES),
    Option("ha_discovery", True, "Publish Home Assistant MQTT discovery", type=parse_bool),
    Option("ha_prefix", "homeassistant", "Home Assistant discovery prefix", type=topic_prefix),
    Option("chat_timeout", 30.0, "Seconds a conversation waits for the chat backend", type=float),
    # Limits
    Option("max_sessions", 8, "Sessions (STT + TTS) at once; more are answered 'busy'", type=int),
    Option("max_control_bytes", 8192, "Largest JSON control message", type=int),
    Option("max_chunk_bytes", 65536, "Largest audio chunk message", type=int),
    Option("max_audio_seconds", 60.0, "Longest STT utterance", type=float),
    Option("idle_timeout", 5.0, "Seconds an STT or streaming TTS session may wait for its next message", type=float),
    Option("max_text_chars", 4000, "Longest text of one TTS request", type=int),
    Option("max_sites", 256, "Most sites with stored settings", type=int),
    Option("audio_chunk_bytes", 4096, "Largest audio chunk the bridge publishes", type=int),
    Option("http", None, "Serve /healthz and /metrics on HOST:PORT (off when unset)", metavar="HOST:PORT",
           type=http_address),
    Option("log_level", "INFO", "Logging level", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    DEBUG_OPTION,
]


@dataclass(frozen=True)
class Limits:
    """Caps the bridge enforces on every request."""

    max_sessions: int = 8
    max_control_bytes: int = 8192
    max_chunk_bytes: int = 65536
    max_audio_seconds: float = 60.0
    idle_timeout: float = 5.0
    max_text_chars: int = 4000
    max_sites: int = 256
    audio_chunk_bytes: int = 4096
    backend_timeout: float = 30.0
    stt_timeout_factor: float = 1.0
    stt_timeout_max: float = 300.0
    connect_timeout: float = 3.0
    chat_timeout: float = 30.0
    #: STT formats accepted in `start` (anything else: invalid_format).
    rates: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
    widths: tuple[int, ...] = (2, 4)
    channels: tuple[int, ...] = (1, 2)
    #: A `stop` may announce at most this share of chunks lost before the result is an error.
    max_lost_share: float = 0.1
    max_correlation_bytes: int = 256

    @classmethod
    def from_config(cls, config: argparse.Namespace) -> "Limits":
        return cls(**{name: getattr(config, name) for name in (
            "max_sessions", "max_control_bytes", "max_chunk_bytes", "max_audio_seconds",
            "idle_timeout", "max_text_chars", "max_sites", "audio_chunk_bytes",
            "backend_timeout", "stt_timeout_factor", "stt_timeout_max", "connect_timeout", "chat_timeout",
        )})


def parse_config(argv: Sequence[str] | None = None) -> argparse.Namespace:
    config = resolve(
        "wyoming-voice-broker",
        "Bridge between MQTT and Wyoming speech-to-text / text-to-speech services "
        "(topics and payloads: docs/mqtt.md).",
        PREFIX, OPTIONS, argv,
    )
    if config.mqtt_port is None:
        config.mqtt_port = 8883 if config.mqtt_tls else 1883
    if config.mqtt_client_id is None:
        # Unique per process: two bridges with one id would disconnect each other forever.
        host = socket.gethostname().split(".")[0] or "host"
        config.mqtt_client_id = f"voice-bridge-{host}-{secrets.token_hex(3)}"
    if config.discover is None:
        config.discover = not (config.stt or config.tts)
    if bool(config.mqtt_cert) != bool(config.mqtt_key):
        usage_error("--mqtt-cert and --mqtt-key go together")
    if config.embedded_mqtt:
        if config.mqtt_host not in ("127.0.0.1", "localhost", "::1"):
            usage_error("--embedded-mqtt listens on loopback only (use --mqtt-host 127.0.0.1)")
        config.mqtt_protocol = "3.1.1"  # amqtt speaks MQTT 3.1.1
    for name in ("backend_timeout", "stt_timeout_factor", "stt_timeout_max"):
        if getattr(config, name) < 0:
            raise SystemExit(f"wyoming-voice-broker: --{name.replace('_', '-')} must not be negative")
    for name in ("max_sessions", "max_control_bytes", "max_chunk_bytes", "max_text_chars",
                 "max_sites", "audio_chunk_bytes"):
        if getattr(config, name) < 1:
            usage_error(f"--{name.replace('_', '-')} must be at least 1")
    return config
