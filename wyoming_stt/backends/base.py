"""The interface every STT backend implements.

The protocol handler only ever sees this: load once, say which models and
languages are really available, and turn 16 kHz mono float32 audio into text.
`transcribe` is blocking and runs in a worker thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None
    initial_prompt: str | None = None
    #: Names and terms that should be spelled right (Wyoming transcript_names/terms).
    hotwords: tuple[str, ...] = field(default_factory=tuple)
    beam_size: int = 1
    #: Prefer accuracy over speed (partial results decoded while audio still arrives, whose
    #: words are committed early): backends may skip speed shortcuts.
    thorough: bool = False


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str | None


@dataclass(frozen=True)
class ModelDescription:
    name: str
    languages: list[str]
    description: str
    attribution_name: str
    attribution_url: str
    version: str | None = None


class SttBackend(ABC):
    name: str

    @abstractmethod
    def load(self) -> None:
        """Load the model (once per process); raise a clear error if it cannot."""

    @abstractmethod
    def model(self) -> ModelDescription:
        """What is loaded, for the Wyoming `info` event."""

    @abstractmethod
    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcription:
        """Blocking: 16 kHz mono float32 -> text ('' for silence or noise)."""

    @abstractmethod
    def vad_stream(self) -> VadStream:
        """A fresh voice-activity scorer for one audio stream.

        Where speech ends decides what the final decode covers (see wyoming_stt/endpoint.py),
        so scores must not depend on how the stream was cut into calls."""


class VadStream(ABC):
    """Speech probabilities of one stream's consecutive 512-sample windows (16 kHz)."""

    @abstractmethod
    def score(self, windows: np.ndarray) -> np.ndarray:
        """Blocking: probabilities for `windows` of shape (n, 512), the stream's next n; the
        same values whatever the split of the stream into calls."""
