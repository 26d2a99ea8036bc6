"""STT backends behind one small interface, chosen by `--backend`."""

from __future__ import annotations

from typing import get_args

from ..config import Backend, WhisperConfig
from .base import DecodeOptions, SttBackend, Transcription

BACKENDS: tuple[str, ...] = get_args(Backend)


def create_backend(name: Backend, config: WhisperConfig) -> SttBackend:
    """Build the backend `name` (not yet loaded) with its own section of the configuration."""
    if name == "faster-whisper":
        from .faster_whisper import FasterWhisperBackend

        return FasterWhisperBackend(config)
    raise ValueError(f"unknown STT backend: {name}")


__all__ = ["BACKENDS", "DecodeOptions", "SttBackend", "Transcription", "create_backend"]
