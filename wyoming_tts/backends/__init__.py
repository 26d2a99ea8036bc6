"""TTS backends behind one small interface, chosen by `--backend` / `--fallback`."""

from __future__ import annotations

from typing import get_args

from ..config import BackendName, KokoroConfig, PiperConfig, Qwen3Config, TtsConfig
from ..voices import PromptCache, VoiceStore
from .base import AudioOut, BackendError, SynthesisOptions, TtsBackend, VoiceSpec

BACKENDS: tuple[str, ...] = get_args(BackendName)


def create_backend(name: BackendName, config: TtsConfig, default_voice: str | None = None,
                   voices: tuple[VoiceStore, PromptCache] | None = None) -> TtsBackend:
    """Build one backend (not yet loaded) with only its own section of `config`; imports stay
    lazy so an unused backend costs nothing. Piper's default voice is --voice where given; a
    cloning backend also gets the service's voice profiles and prompt cache (`voices`)."""
    if name == "piper":
        from .piper import PiperBackend

        return PiperBackend(PiperConfig.of(config), config.voice or default_voice)
    if name == "kokoro":
        from .kokoro import KokoroBackend

        return KokoroBackend(KokoroConfig.of(config), default_voice)
    if name == "qwen3":
        from .qwen3 import Qwen3Backend

        if voices is None:
            raise ValueError("the qwen3 backend needs the voice profiles")
        return Qwen3Backend(Qwen3Config.of(config), *voices)
    raise ValueError(f"unknown TTS backend: {name}")


__all__ = ["AudioOut", "BACKENDS", "BackendError", "SynthesisOptions", "TtsBackend", "VoiceSpec", "create_backend"]
