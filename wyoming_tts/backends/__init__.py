"""TTS backends behind one small interface, chosen by `--backend` / `--fallback`."""

from __future__ import annotations

from .base import AudioOut, BackendError, SynthesisOptions, TtsBackend, VoiceSpec

BACKENDS = ("piper", "kokoro")


def create_backend(name: str, config, default_voice: str | None = None) -> TtsBackend:
    """Build one backend (not yet loaded); imports stay lazy so an unused one costs nothing."""
    if name == "piper":
        from .piper import PiperBackend

        return PiperBackend(config, default_voice)
    if name == "kokoro":
        from .kokoro import KokoroBackend

        return KokoroBackend(config, default_voice)
    raise ValueError(f"unknown TTS backend: {name}")


__all__ = ["AudioOut", "BACKENDS", "BackendError", "SynthesisOptions", "TtsBackend", "VoiceSpec", "create_backend"]
