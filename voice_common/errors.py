"""Every error code the project puts on the wire, and the one shape of an error: (text, code).

Two wire formats carry them: the Wyoming `error` event of the STT and TTS services
(`WyomingCode`; README.md and docs/tts.md list them) and the bridge's MQTT `result/error`
(`MqttCode`; docs/mqtt.md). The codes are the API, so their spelling never changes;
tests/test_contract.py checks that the docs list exactly these.

Only protocol handlers raise these errors. Engines and backends raise domain errors
(an audio format that cannot be read, a voice that does not exist), which each handler
turns into the code of its own wire format.
"""

from __future__ import annotations

from enum import StrEnum


class WyomingCode(StrEnum):
    """`code` of a Wyoming `error` event sent by the STT or TTS service."""

    BAD_REQUEST = "bad_request"
    INVALID_FORMAT = "invalid_format"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    BUSY = "busy"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    UNKNOWN_VOICE = "unknown_voice"
    UNKNOWN_SPEAKER = "unknown_speaker"
    VOICE_EXISTS = "voice_exists"
    FORBIDDEN = "forbidden"
    SYNTHESIS_FAILED = "synthesis_failed"
    INTERNAL_ERROR = "internal_error"
    SHUTTING_DOWN = "shutting_down"


class MqttCode(StrEnum):
    """`code` of the bridge's `result/error` (and `settings/error`) payloads."""

    BUSY = "busy"
    TIMEOUT = "timeout"
    INVALID_FORMAT = "invalid_format"
    INVALID_REQUEST = "invalid_request"
    TOO_LARGE = "too_large"
    AUDIO_LOST = "audio_lost"
    SERVICE_UNAVAILABLE = "service_unavailable"
    BACKEND_ERROR = "backend_error"
    DISABLED = "disabled"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    EXPIRED = "expired"
    VOICE_EXISTS = "voice_exists"
    UNKNOWN_VOICE = "unknown_voice"


class WireError(Exception):
    """An error a client is told about: `text` for people, `code` for programs.

    Subclasses fix which codes are allowed (`ProtocolError`: Wyoming, `SessionError`: MQTT);
    the arguments are always (text, code).
    """

    def __init__(self, text: str, code: StrEnum) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
