"""What a session reports, as typed results, and the `Sink` a front receives them through.

Results are small frozen dataclasses (like the `wyoming` package's events), so the MQTT
payloads, the HTTP JSON and the WebSocket messages are renderings of one thing. An STT
session sends `Partial`s (only when asked for) and ends with `Final` or `Failure`; a TTS
session sends `AudioFormat`, then `Audio` pieces, and ends with `Done` or `Failure`. A
voice-profile operation ends with `ProfileSaved`, `ProfileDeleted` or `Failure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from voice_common.errors import MqttCode

from .errors import SessionError


@dataclass(frozen=True)
class Partial:
    """STT: the text so far (whole, not a delta); `seq` counts from 1."""

    text: str
    seq: int


@dataclass(frozen=True)
class Final:
    """STT: the transcript. `lost_chunks`: chunks the requester announced but never sent."""

    text: str
    language: str | None
    audio_ms: int
    latency_ms: int
    lost_chunks: int = 0


@dataclass(frozen=True)
class AudioFormat:
    """TTS: the PCM format of the `Audio` that follows, and the voice that speaks it."""

    rate: int
    width: int
    channels: int
    voice: str | None = None


@dataclass(frozen=True)
class Audio:
    """TTS: one piece of PCM (at most --audio-chunk-bytes, whole frames)."""

    data: bytes


@dataclass(frozen=True)
class Done:
    """TTS finished: `chunks` Audio results of `bytes` in all; `latency_ms` to the first audio."""

    chunks: int
    bytes: int
    audio_ms: int
    latency_ms: int


@dataclass(frozen=True)
class Failure:
    """The session ended without its result (or was refused after it started)."""

    code: MqttCode
    text: str

    @classmethod
    def of(cls, err: SessionError) -> Failure:
        return cls(err.code, err.text)

    def error(self) -> SessionError:
        return SessionError(self.text, self.code)


@dataclass(frozen=True)
class Refusal:
    """One TTS service that did not take a voice-profile operation, and why."""

    service: str
    code: str
    text: str


@dataclass(frozen=True)
class ProfileSaved:
    """A voice profile was created on `services` (their names); `failed`: the ones that refused."""

    name: str
    languages: tuple[str, ...]
    services: tuple[str, ...]
    failed: tuple[Refusal, ...] = ()
    audio_ms: int = 0


@dataclass(frozen=True)
class ProfileDeleted:
    """A voice profile was deleted on `services`; `failed`: the ones that could not."""

    name: str
    services: tuple[str, ...]
    failed: tuple[Refusal, ...] = ()


Result = Partial | Final | AudioFormat | Audio | Done | Failure | ProfileSaved | ProfileDeleted


class Sink(Protocol):
    """Where one session's results go; each front renders them in its wire format."""

    async def send(self, result: Result) -> None:
        """Deliver one result. May raise (the requester is gone): that ends the session
        quietly, since nobody is left to tell."""


class SinkFailed(Exception):
    """Raised inside a session when its sink raised: the session ends, no Failure is sent."""
