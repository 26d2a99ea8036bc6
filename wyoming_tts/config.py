"""The TTS service's configuration: every option once, with its default (see voice_common.settings).

`TtsConfig` is what the service resolves at start; each backend receives only its own
section (`PiperConfig`, `KokoroConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from voice_common.config import non_negative_float, non_negative_int, positive_float, positive_int
from voice_common.settings import ServerConfig, Settings, setting
from voice_common.voice import MAX_SPEED, MIN_SPEED, speed_option

BackendName = Literal["piper", "kokoro", "qwen3"]

_CACHE = Path.home() / ".cache" / "wyoming-voice-services"
#: The official Piper voices index (voices.json) and files, as wyoming-piper downloads them.
PIPER_VOICES_URL = "https://huggingface.co/rhasspy/piper-voices/resolve/main/"


@dataclass(frozen=True, kw_only=True)
class BackendConfig(Settings):
    """What every backend reads."""

    device: Literal["cpu", "cuda"] = setting(
        "cpu", "Inference device (cuda: piper via onnxruntime-gpu, kokoro via the torch package)")


@dataclass(frozen=True, kw_only=True)
class PiperConfig(BackendConfig):
    """What the Piper backend reads."""

    voices_dir: str | None = setting(None, "Directory whose Piper voices (.onnx + .onnx.json) are all served")
    download_dir: str = setting(
        str(_CACHE / "piper-voices"), "The Piper data folder: voices named by --voice/--model (or a request) "
        "are downloaded here, and every voice in it is served")
    voice: str | None = setting(
        None, "Piper voice by name, as wyoming-piper's --voice (e.g. de_DE-thorsten-medium): downloaded into "
        "--download-dir if not installed, then Piper's default voice wherever piper is in the chain")
    voices_url: str = setting(
        PIPER_VOICES_URL, "Base URL of the Piper voices index (voices.json) and files ({url}/{path}); "
        "a local mirror for offline sites")
    download_on_request: bool = setting(
        False, "Download a Piper voice that a Wyoming request names and that is not installed (off: only "
        "--voice/--model download, at start-up)")
    download_timeout: float = setting(
        300.0, "Seconds one Piper voice file (or the index) may take to download", parse=positive_float)
    length_scale: float | None = setting(None, "Piper phoneme length (default: the voice's; >1 is slower)")
    noise_scale: float | None = setting(None, "Piper generator noise (default: the voice's)")
    noise_w: float | None = setting(None, "Piper phoneme width noise (default: the voice's)")


@dataclass(frozen=True, kw_only=True)
class KokoroConfig(BackendConfig):
    """What the Kokoro backend reads."""

    kokoro_model: str | None = setting(
        None, "Kokoro ONNX model (default: the bundled Kokoro-82M int8), e.g. kokoro-v1.0.onnx")
    kokoro_voices: str | None = setting(
        None, "Kokoro voices file (default: the bundled Japanese voices), e.g. voices-v1.0.bin")
    kokoro_torch_dir: str | None = setting(
        None, "With --device cuda: directory with Kokoro's config.json and .pth (default: the Hugging Face "
        "cache of hexgrad/Kokoro-82M)")


@dataclass(frozen=True, kw_only=True)
class Qwen3Config(BackendConfig):
    """What the Qwen3-TTS (voice cloning) backend reads."""

    qwen_model: str | None = setting(
        None, "Qwen3-TTS-12Hz Base model: a folder with the official layout, or a hub name (downloads once)")
    qwen_dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto", "Qwen3 weights' precision (auto: bfloat16 on cuda, float32 on cpu)")


@dataclass(frozen=True, kw_only=True)
class VoiceProfilesConfig(Settings):
    """The service's voice profiles (cloned voices) and their prompt cache."""

    voice_profiles_dir: str = setting(
        str(Path.home() / ".local" / "share" / "wyoming-voice-services" / "voices"),
        "Folder of voice profiles (<name>/reference.wav + voice.json), served by cloning backends")
    voice_edits: bool = setting(True, "Accept voice-create / voice-delete events over Wyoming")
    max_voice_profiles: int = setting(64, "Most voice profiles kept; more get 'too_large'", parse=positive_int)
    prompt_cache_entries: int = setting(16, "Clone prompts kept in memory (0 = read from disk each time)",
                                        parse=non_negative_int)
    prompt_cache_mb: float = setting(64.0, "Memory for clone prompts in MiB", parse=non_negative_float)


@dataclass(frozen=True, kw_only=True)
class TtsConfig(VoiceProfilesConfig, Qwen3Config, KokoroConfig, PiperConfig, ServerConfig):
    """`wyoming-tts`: the server, each backend's section, and how requests are spoken."""

    PREFIX = "TTS"
    SERVICE = "tts"

    uri: str = "tcp://0.0.0.0:10200"
    max_sessions: int = 4
    backend: BackendName = setting("piper", "Text-to-speech backend (first in the fallback chain)")
    fallback: tuple[BackendName, ...] = setting(
        (), "Backends tried next, in order, when one fails or lacks the language (comma list or repeated)")
    model: str | None = setting(
        None, "Default voice of --backend: a voice name from `info` (default: en_US-joe-medium for piper, "
        "the first voice for kokoro), for piper also a path to an .onnx voice or a voice name to download")
    speaker: str | None = setting(None, "Default speaker (name or number) of multi-speaker voices")
    sentence_silence: float = setting(
        0.0, "Seconds of silence between sentences, once per boundary and none after the last (as "
        "wyoming-piper's --sentence-silence; any backend)", parse=non_negative_float)
    speed: float = setting(1.0, f"Default speaking rate ({MIN_SPEED}-{MAX_SPEED}); requests may send 'speed'",
                           parse=speed_option)
    samples_per_chunk: int = setting(1024, "Samples per audio-chunk event", parse=positive_int)
    max_text_chars: int = setting(10000, "Longest text per request or stream; more gets 'too_large'",
                                  parse=positive_int)
    cache_mb: float = setting(32.0, "Audio cache size in MiB (0 = off)", parse=non_negative_float)
    workers: int = setting(2, "Pieces synthesized at once across all clients (worker threads)", parse=positive_int)

    def chain(self) -> list[BackendName]:
        """--backend first, then --fallback in order, each once."""
        names = [self.backend]
        for name in self.fallback:
            if name not in names:
                names.append(name)
        return names
