"""The interface every TTS backend implements.

The engine only ever sees this: load once, list the voices that are really
usable, and turn one bounded piece of text into 16-bit mono PCM. `synthesize`
is blocking and runs in a worker thread; it yields chunks so a backend that
produces audio in parts can hand them on at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field


class BackendError(RuntimeError):
    """A backend could not load or synthesize (the engine may try the next one)."""


@dataclass(frozen=True)
class VoiceSpec:
    """One installed voice, as `info` reports it and requests address it."""

    name: str
    #: Languages this voice speaks, as Wyoming reports them (`en_US`, `ja_JP`).
    languages: tuple[str, ...]
    description: str
    attribution_name: str
    attribution_url: str
    version: str | None = None
    speakers: tuple[str, ...] = field(default_factory=tuple)
    sample_rate: int = 22050


@dataclass(frozen=True)
class SynthesisOptions:
    speaker: str | None = None
    #: 1.0 = the voice's natural pace; 2.0 = twice as fast.
    speed: float = 1.0
    #: Requested language (normalized, e.g. `en-us`), so multilingual voices pick their G2P.
    language: str | None = None


@dataclass(frozen=True)
class AudioOut:
    """16-bit mono PCM in chunks, at `rate` Hz."""

    rate: int
    chunks: Iterator[bytes]
    width: int = 2
    channels: int = 1
    #: For a backend that scales each chunk to full scale (Piper, as piper-tts does per
    #: sentence): the chunk's peak before scaling, appended before the chunk is yielded.
    #: The engine uses it to keep one level across a sentence spoken in pieces.
    peaks: list[float] = field(default_factory=list)


class TtsBackend(ABC):
    name: str
    #: Speak the first few words of a request on their own (early first audio). Worth it
    #: only where a call's fixed cost is small against its per-word cost (Piper, not Kokoro).
    short_first_piece: bool = True

    @abstractmethod
    def load(self) -> None:
        """Load models (once per process); raise a clear error if that cannot be done."""

    @abstractmethod
    def voices(self) -> list[VoiceSpec]:
        """Voices that are loaded and usable, default voice first."""

    def install(self, name: str) -> bool:
        """Blocking: fetch and load voice `name`, which a request named and `voices` lacks.
        False when this backend cannot (the default); may raise for a failed download."""
        return False

    @abstractmethod
    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> AudioOut:
        """Blocking: one sentence or bounded piece of text -> PCM chunks."""

