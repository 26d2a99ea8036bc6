"""STT backends behind one small interface, chosen by `--backend`."""

from __future__ import annotations

from .base import DecodeOptions, SttBackend, Transcription

BACKENDS = ("faster-whisper",)


def create_backend(config) -> SttBackend:
    """Build the configured backend (not yet loaded)."""
    if config.backend == "faster-whisper":
        from .faster_whisper import FasterWhisperBackend

        return FasterWhisperBackend(config)
    raise ValueError(f"unknown STT backend: {config.backend}")


__all__ = ["BACKENDS", "DecodeOptions", "SttBackend", "Transcription", "create_backend"]
