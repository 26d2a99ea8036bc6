"""TTS backends behind one small interface, chosen by `--backend` / `--fallback`."""

from __future__ import annotations

from typing import get_args

from ..config import BackendName, KokoroConfig, PiperConfig, TtsConfig
from .base import AudioOut, BackendError, SynthesisOptions, TtsBackend, VoiceSpec

BACKENDS: tuple[str, ...] = get_args(BackendName)


def create_backend(name: BackendName, config: TtsConfig, default_voice: str | None = None) -> TtsBackend:
    """Build one backend (not yet loaded) with only its own section of `config`; imports stay
    lazy so an unused backend costs nothing. Piper's default voice is --voice where given."""
    if name == "piper":
        from .piper import PiperBackend

        return PiperBackend(PiperConfig.of(config), config.voice or default_voice)
    if name == "kokoro":
        from .kokoro import KokoroBackend

        return KokoroBackend(KokoroConfig.of(config), default_voice)
    raise ValueError(f"unknown TTS backend: {name}")


__all__ = ["AudioOut", "BACKENDS", "BackendError", "SynthesisOptions", "TtsBackend", "VoiceSpec", "create_backend"]
