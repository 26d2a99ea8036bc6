"""`python -m wyoming_tts` / `wyoming-tts`: the text-to-speech server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker

from voice_common import __version__
from voice_common.app import main_entry, run_service, setup_logging
from voice_common.config import ConfigError, Option, common_options, resolve
from voice_common.server import SessionSlots

from .backends import BACKENDS, VoiceSpec, create_backend
from .engine import Engine
from .handler import MAX_SPEED, MIN_SPEED, TtsConnection, TtsService
from .metrics import TtsMetrics

_LOGGER = logging.getLogger("wyoming_tts")
_CACHE = Path.home() / ".cache" / "wyoming-voice-services"


def _positive_int(value) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {number}")
    return number


def _non_negative(value) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    return number


def _speed(value) -> float:
    number = float(value)
    if not MIN_SPEED <= number <= MAX_SPEED:
        raise ValueError(f"must be from {MIN_SPEED} to {MAX_SPEED}, got {number}")
    return number


def _backend(value) -> str:
    if value not in BACKENDS:
        raise ValueError(f"{value!r} is not one of {', '.join(BACKENDS)}")
    return value


OPTIONS = [
    *common_options("tts", 10200),
    Option("backend", "piper", "Text-to-speech backend (first in the fallback chain)", choices=BACKENDS),
    Option("fallback", [], "Backends tried next, in order, when one fails or lacks the language "
           "(comma list or repeated)", type=_backend, multiple=True),
    Option("model", None, "Default voice of --backend: a voice name from `info` (default: en_US-joe-medium "
           "for piper, the first voice for kokoro), for piper also a path to an .onnx voice or a voice name "
           "to download"),
    Option("device", "cpu", "Inference device (cuda: piper via onnxruntime-gpu, kokoro via the torch package)",
           choices=("cpu", "cuda")),
    Option("voices_dir", None, "Directory whose Piper voices (.onnx + .onnx.json) are all served"),
    Option("download_dir", str(_CACHE / "piper-voices"), "Where Piper voices named by --model are downloaded"),
    Option("speaker", None, "Default speaker (name or number) of multi-speaker voices"),
    Option("length_scale", None, "Piper phoneme length (default: the voice's; >1 is slower)", type=float),
    Option("noise_scale", None, "Piper generator noise (default: the voice's)", type=float),
    Option("noise_w", None, "Piper phoneme width noise (default: the voice's)", type=float),
    Option("sentence_silence", 0.0, "Seconds of silence between sentences, once per boundary and none after "
           "the last (as wyoming-piper's --sentence-silence; any backend)", type=_non_negative),
    Option("kokoro_model", None, "Kokoro ONNX model (default: the bundled Kokoro-82M int8), e.g. kokoro-v1.0.onnx"),
    Option("kokoro_voices", None, "Kokoro voices file (default: the bundled Japanese voices), e.g. voices-v1.0.bin"),
    Option("kokoro_torch_dir", None, "With --device cuda: directory with Kokoro's config.json and .pth "
           "(default: the Hugging Face cache of hexgrad/Kokoro-82M)"),
    Option("speed", 1.0, f"Default speaking rate ({MIN_SPEED}-{MAX_SPEED}); requests may send 'speed'", type=_speed),
    Option("samples_per_chunk", 1024, "Samples per audio-chunk event", type=_positive_int),
    Option("max_text_chars", 10000, "Longest text per request or stream; more gets 'too_large'", type=_positive_int),
    Option("cache_mb", 32.0, "Audio cache size in MiB (0 = off)", type=float),
    Option("workers", 2, "Pieces synthesized at once across all clients (worker threads)", type=_positive_int),
]


def check_config(config) -> None:
    """Paths that do not exist, found before any model loads (each a one-line error, exit 2)."""
    files = [("kokoro_model", config.kokoro_model), ("kokoro_voices", config.kokoro_voices)]
    if config.model and (config.model.endswith(".onnx") or "/" in config.model or config.model.startswith("~")):
        files.append(("model", config.model))  # a Piper voice file, not a voice name
    for name, value in files:
        if value and not Path(value).expanduser().is_file():
            raise ConfigError(f"--{name.replace('_', '-')} {value}: no such file")
    for name, value in (("voices_dir", config.voices_dir), ("kokoro_torch_dir", config.kokoro_torch_dir)):
        if value and not Path(value).expanduser().is_dir():
            raise ConfigError(f"--{name.replace('_', '-')} {value}: no such directory")


def build_info(voices: list[VoiceSpec]) -> Info:
    return Info(tts=[TtsProgram(
        name="wyoming-voice-services-tts",
        description="wyoming-voice-services text to speech (Piper, Kokoro)",
        attribution=Attribution(name="wyoming-voice-services", url="https://github.com/wyoming-voice-services"),
        installed=True,
        version=__version__,
        supports_synthesize_streaming=True,
        voices=[
            TtsVoice(
                name=spec.name,
                description=spec.description,
                attribution=Attribution(name=spec.attribution_name, url=spec.attribution_url),
                installed=True,
                version=spec.version,
                languages=list(spec.languages),
                speakers=[TtsVoiceSpeaker(name=s) for s in spec.speakers] or None,
            )
            for spec in voices
        ],
    )])


def chain(config) -> list[str]:
    """--backend first, then --fallback in order, each once."""
    names = [config.backend]
    for name in config.fallback or []:
        if name not in names:
            names.append(name)
    return names


async def serve(config) -> int:
    metrics = TtsMetrics()
    backends = [
        create_backend(name, config, config.model if i == 0 else None) for i, name in enumerate(chain(config))
    ]
    engine = Engine(backends, metrics, int(config.cache_mb * 1024 * 1024), config.workers, config.speaker)
    holder: dict[str, TtsService] = {}

    def load() -> None:
        engine.load()
        holder["service"] = TtsService(
            engine=engine, metrics=metrics, slots=SessionSlots(config.max_sessions),
            info=build_info(engine.voices()).event(), samples_per_chunk=config.samples_per_chunk,
            max_text_chars=config.max_text_chars, default_speed=config.speed,
            sentence_silence=config.sentence_silence,
        )

    try:
        return await run_service(
            config, service="tts", metrics=metrics, load=load,
            factory=lambda writer, limits: TtsConnection(writer, limits, holder["service"]),
        )
    finally:
        engine.shutdown()


def main(argv: list[str] | None = None) -> None:
    config = resolve("wyoming-tts", "Wyoming text-to-speech server (Piper, Kokoro)", "TTS", OPTIONS, argv,
                     check=check_config)
    setup_logging(config.log_level)
    main_entry(lambda: serve(config))


if __name__ == "__main__":
    main(sys.argv[1:])
