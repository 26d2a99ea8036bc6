"""The bridge's configuration: every option once, with its default (see voice_common.settings).

`BridgeConfig` is resolved once at start and handed on as `config`; each part of the
bridge is typed with the section it reads (`MqttConfig` for the MQTT link,
`BridgeLimits` for sessions, ...), so every option keeps its one name from the command
line to the code that uses it.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlparse

from voice_common.config import (
    ConfigError,
    existing_path,
    http_address,
    non_negative_float,
    parse_bool,
    positive_float,
    positive_int,
)
from voice_common.settings import ProcessConfig, Settings, load, options_of, setting

Mode = Literal["disabled", "transcribe_only", "tts_only", "conversation"]
MODES: tuple[str, ...] = get_args(Mode)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def on_off(value: object) -> bool:
    """`on`/`off` (or any boolean word) as a value: `--api-auth off` reads as it is said."""
    return parse_bool(value)


def default_client_id() -> str:
    """Unique per process: two bridges with one id would disconnect each other forever."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"voice-bridge-{host}-{secrets.token_hex(3)}"


def default_db() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "wyoming-voice-broker" / "settings.sqlite3")


@dataclass(frozen=True, kw_only=True)
class MqttConfig(Settings):
    """The MQTT connection (broker.mqtt, broker.embedded)."""

    mqtt_host: str = setting("127.0.0.1", "MQTT broker host")
    mqtt_port: int = setting(None, "MQTT broker port (default 1883, 8883 with --mqtt-tls)", parse=positive_int)
    mqtt_protocol: Literal["5", "3.1.1"] = setting("5", "MQTT protocol version")
    mqtt_username: str | None = setting(None, "MQTT user name")
    mqtt_password: str | None = setting(None, "MQTT password (prefer the environment twin)", secret=True)
    mqtt_client_id: str = setting(None, "MQTT client id (default: voice-bridge-<hostname>-<random>)")
    mqtt_tls: bool = setting(False, "Connect with TLS")
    mqtt_ca: str | None = setting(None, "CA certificate file for TLS (default: system store)", parse=existing_path)
    mqtt_cert: str | None = setting(None, "Client certificate file for TLS", parse=existing_path)
    mqtt_key: str | None = setting(None, "Client private key file for TLS", parse=existing_path)
    mqtt_tls_insecure: bool = setting(False, "Skip the broker's host name check (testing only)")
    mqtt_keepalive: int = setting(30, "MQTT keepalive in seconds", parse=positive_int)
    reconnect_min: float = setting(0.5, "First reconnect delay in seconds (doubles up to --reconnect-max)",
                                   parse=positive_float)
    reconnect_max: float = setting(30.0, "Longest reconnect delay in seconds", parse=positive_float)
    embedded_mqtt: bool = setting(
        False, "Run a small MQTT 3.1.1 broker (amqtt) in this process on --mqtt-host:--mqtt-port (loopback "
        "only; for first runs, not for production)")

    def __post_init__(self) -> None:
        """Defaults that depend on other options, and options that only work together."""
        self._default("mqtt_port", lambda: 8883 if self.mqtt_tls else 1883)
        self._default("mqtt_client_id", default_client_id)
        if bool(self.mqtt_cert) != bool(self.mqtt_key):
            raise ConfigError("--mqtt-cert and --mqtt-key go together")
        if self.embedded_mqtt:
            if self.mqtt_host not in LOOPBACK:
                raise ConfigError("--embedded-mqtt listens on loopback only (use --mqtt-host 127.0.0.1)")
            self._set("mqtt_protocol", "3.1.1")  # amqtt speaks MQTT 3.1.1
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class TopicsConfig(Settings):
    """The topic tree (broker.topics) and who may receive results (broker.replies)."""

    prefix: str = setting("voice", "Topic prefix of the API", parse=topic_prefix)
    group: str | None = setting(None, "Share request subscriptions ($share/GROUP/...) with other bridges")
    reply_prefix: tuple[str, ...] = setting(("voice/reply/",), "Allowed MQTT v5 Response Topic prefixes",
                                            parse=reply_prefix, metavar="PREFIX")


@dataclass(frozen=True, kw_only=True)
class ServicesConfig(Settings):
    """The Wyoming services (broker.services, broker.discovery) and how long they may take."""

    stt: tuple[str, ...] = setting((), "Wyoming speech-to-text service (repeatable)", parse=tcp_uri, metavar="URI")
    tts: tuple[str, ...] = setting((), "Wyoming text-to-speech service (repeatable)", parse=tcp_uri, metavar="URI")
    discover: bool = setting(None, "Find services via zeroconf (_wyoming._tcp.local.); default: on when no "
                             "--stt/--tts")
    health_interval: float = setting(30.0, "Seconds between service health checks (services that are down: "
                                     "every 2 s)", parse=positive_float)
    connect_timeout: float = setting(3.0, "Seconds to connect to / describe a service", parse=positive_float)
    backend_timeout: float = setting(
        30.0, "Seconds a service may stay silent while it owes us a result (for a transcript after stop: plus "
        "--stt-timeout-factor x the audio's seconds)", parse=non_negative_float)
    stt_timeout_factor: float = setting(
        1.0, "Seconds an STT service may take for the transcript after stop, per second of audio, on top of "
        "--backend-timeout (long audio decodes slowly on a CPU)", parse=non_negative_float)
    stt_timeout_max: float = setting(300.0, "Longest wait in seconds for a transcript after stop",
                                     parse=non_negative_float)

    def __post_init__(self) -> None:
        self._default("discover", lambda: not (self.stt or self.tts))
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class SitesConfig(Settings):
    """Sites, their stored settings, Home Assistant, and conversations."""

    db: str = setting(default_db(), "SQLite file for per-site settings and API keys")
    sites: tuple[str, ...] = setting((), "Sites announced to Home Assistant even before they have settings",
                                     metavar="SITE")
    default_mode: Mode = setting("transcribe_only", "Mode of a site without settings")
    ha_discovery: bool = setting(True, "Publish Home Assistant MQTT discovery")
    ha_prefix: str = setting("homeassistant", "Home Assistant discovery prefix", parse=topic_prefix)
    chat_timeout: float = setting(30.0, "Seconds a conversation waits for the chat backend", parse=positive_float)


@dataclass(frozen=True, kw_only=True)
class BridgeLimits(Settings):
    """Caps the bridge enforces on every request (sessions read these and the service timeouts)."""

    max_sessions: int = setting(8, "Sessions (STT + TTS) at once; more are answered 'busy'", parse=positive_int)
    max_control_bytes: int = setting(8192, "Largest JSON control message", parse=positive_int)
    max_chunk_bytes: int = setting(65536, "Largest audio chunk message", parse=positive_int)
    max_audio_seconds: float = setting(60.0, "Longest STT utterance", parse=positive_float)
    idle_timeout: float = setting(5.0, "Seconds an STT or streaming TTS session may wait for its next message",
                                  parse=positive_float)
    max_text_chars: int = setting(4000, "Longest text of one TTS request", parse=positive_int)
    max_sites: int = setting(256, "Most sites with stored settings", parse=positive_int)
    audio_chunk_bytes: int = setting(4096, "Largest audio chunk the bridge publishes", parse=positive_int)


@dataclass(frozen=True, kw_only=True)
class ApiConfig(Settings):
    """The HTTP front (broker.http): where it listens, who may call it, and what one call may send."""

    api: str | None = setting(None, "Serve the HTTP API (OpenAI-compatible /v1/audio/*, /healthz, /metrics, /docs) "
                              "on HOST:PORT (off when unset)", parse=http_address, metavar="HOST:PORT")
    mqtt: bool = setting(True, "Connect to an MQTT broker and serve the MQTT API (--no-mqtt: the HTTP API alone, "
                         "with --api)")
    api_auth: bool = setting(True, "Require 'Authorization: Bearer KEY' on API calls (off: anyone who reaches "
                             "the port may use it; logged as a warning)", parse=on_off, metavar="on|off")
    api_cors_origins: tuple[str, ...] = setting((), "Browser origins allowed to call the API (repeatable; "
                                                "'*' for any; none when unset)", metavar="ORIGIN")
    api_tls_cert: str | None = setting(None, "Serve the API over HTTPS with this certificate file (PEM; with "
                                       "--api-tls-key; or put a TLS reverse proxy in front)", parse=existing_path)
    api_tls_key: str | None = setting(None, "Private key file of --api-tls-cert (PEM)", parse=existing_path)
    api_max_upload_bytes: int = setting(25 * 1024 * 1024, "Largest audio file one transcription request may "
                                        "upload", parse=positive_int)
    api_max_text_chars: int = setting(4096, "Longest text one speech request may send", parse=positive_int)
    api_max_audio_seconds: float = setting(60.0, "Longest audio one transcription request may hold (the STT "
                                           "services and --max-audio-seconds cap it too)", parse=positive_float)
    api_max_streams_per_key: int = setting(4, "Requests (uploads, speech streams, WebSockets) one API key may "
                                           "have open at once", parse=positive_int)

    def __post_init__(self) -> None:
        if not self.mqtt and not self.api:
            raise ConfigError("--no-mqtt needs --api HOST:PORT (otherwise the bridge would serve nothing)")
        if bool(self.api_tls_cert) != bool(self.api_tls_key):
            raise ConfigError("--api-tls-cert and --api-tls-key go together")
        if self.api_tls_cert and not self.api:
            raise ConfigError("--api-tls-cert needs --api HOST:PORT")
        if self.api_cors_origins and not self.api:
            raise ConfigError("--api-cors-origins needs --api HOST:PORT")
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class SessionConfig(BridgeLimits, ServicesConfig):
    """What a session reads: the caps, and how long a service may take."""


@dataclass(frozen=True, kw_only=True)
class BridgeConfig(ProcessConfig, ApiConfig, SitesConfig, SessionConfig, TopicsConfig, MqttConfig):
    """`wyoming-voice-broker`. Fields are ordered from the last base to the first."""

    PREFIX = "BROKER"
    SERVICE = "broker"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.mqtt and self.embedded_mqtt:
            raise ConfigError("--no-mqtt and --embedded-mqtt contradict each other (choose one)")


#: Every option (flag, environment twin, TOML key), for --help, the README and the tests.
OPTIONS = options_of(BridgeConfig)


def parse_config(argv: Sequence[str] | None = None) -> BridgeConfig:
    return load(
        BridgeConfig, "wyoming-voice-broker",
        "Bridge between MQTT and Wyoming speech-to-text / text-to-speech services (topics and payloads: "
        "docs/mqtt.md).",
        argv,
    )
