"""`python -m wyoming_stt` / `wyoming-stt`: the speech-to-text server."""

from __future__ import annotations

import logging
import os
import sys

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from voice_common import __version__
from voice_common.app import main_entry, run_service, setup_logging
from voice_common.config import ConfigError, Option, common_options, parse_bool, resolve
from voice_common.models import ModelError

from .backends import BACKENDS, SttBackend, create_backend
from .engine import Engine
from .handler import SttMetrics, SttService, normalize_language

_LOGGER = logging.getLogger("wyoming_stt")

OPTIONS = [
    *common_options("stt", 10300, max_sessions=16),  # sessions are cheap; --workers bound the CPU
    Option("backend", "faster-whisper", "Speech-to-text backend", choices=BACKENDS),
    Option(
        "model", "tiny.en",
        "Model: a bundled short name (tiny.en; base with the [multilingual] extra), a local "
        "CTranslate2 model directory, or a hub name such as small or Systran/faster-whisper-small",
    ),
    Option("device", "cpu", "Inference device", choices=("cpu", "cuda", "auto")),
    Option("compute_type", "auto", "CTranslate2 compute type (auto: int8 on CPU, float16 on CUDA)"),
    Option("beam_size", 5, "Beam size (5: the most accurate, faster-whisper's default; 1: greedy, faster)", type=int),
    Option("cpu_threads", 0, "CPU threads per decode (0 = CPU cores / workers)", type=int),
    Option("workers", 2, "Decodes that may run at once (CTranslate2 workers; 2 x 1 thread beats 1 x 2 threads in throughput)", type=int),
    Option("language", None, "Default language when the client sends none (e.g. en)"),
    Option("initial_prompt", None, "Text that biases decoding (names, spelling, style)"),
    Option("max_audio_seconds", 60.0, "Longest audio accepted per request", type=float),
    Option("streaming", True, "Send transcript-start/-chunk/-stop streaming events", type=parse_bool),
    Option("partial_interval", 1.0, "Seconds of new audio between partial decodes", type=float),
    Option("vad", True, "Drop non-speech with Silero VAD before decoding (no words from silence)", type=parse_bool),
    Option("short_context", False, "Encode only the audio plus 2 s (at least 10 s) instead of Whisper's "
           "30 s window: ~3x faster decodes, but words can differ from the full window's (opt-in)",
           type=parse_bool),
    Option("no_speech_threshold", 0.6, "Drop segments whose no-speech probability is above this", type=float),
    Option("download_dir", None, "Where hub models are downloaded/cached (default: the Hugging Face cache)"),
    Option("local_files_only", False, "Never download a hub model; use only the local cache", type=parse_bool),
]


def looks_like_a_path(model: str) -> bool:
    """A directory, not a name: `/x`, `./x`, `~/x`, `a/b/c` (a hub name has one '/': `Systran/x`)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or model.endswith("/")


def check_config(config) -> None:
    """Mistakes found before any model loads (each a one-line error, exit 2)."""
    model = config.model
    if looks_like_a_path(model) or os.path.isdir(os.path.expanduser(model)):
        path = os.path.expanduser(model)
        if not os.path.exists(path):
            raise ConfigError(f"--model {model}: directory {path} does not exist (give a CTranslate2 model "
                              "directory, or a model name such as tiny.en)")
        if not os.path.isdir(path):
            raise ConfigError(f"--model {model}: not a directory (a CTranslate2 model is a directory "
                              "with model.bin)")
        if not os.path.isfile(os.path.join(path, "model.bin")):
            raise ConfigError(f"--model {model}: no model.bin in {path} (not a CTranslate2 model directory)")
        return
    language = normalize_language(config.language)
    if language and language != "en" and model.lower().endswith(".en"):
        raise ConfigError(
            f"--language {config.language}: model {model} is English-only and cannot do {language!r} "
            "(use a multilingual model such as --model base, or leave --language unset)"
        )


def check_language(config, languages: list[str]) -> None:
    """After loading: --language must be one the model has (e.g. a local English-only model)."""
    language = normalize_language(config.language)
    if language and language not in languages:
        raise ModelError(f"--language {config.language}: model {config.model} cannot do {language!r} "
                         f"(it has: {', '.join(languages[:12])}{'...' if len(languages) > 12 else ''})")


def build_info(backend: SttBackend) -> Info:
    model = backend.model()
    attribution = Attribution(name=model.attribution_name, url=model.attribution_url)
    return Info(
        asr=[
            AsrProgram(
                name="wyoming-voice-services-stt",
                description=f"wyoming-voice-services speech to text ({backend.name})",
                attribution=Attribution(name="wyoming-voice-services", url="https://github.com/wyoming-voice-services"),
                installed=True,
                version=__version__,
                supports_transcript_streaming=True,
                models=[
                    AsrModel(
                        name=model.name,
                        description=model.description,
                        attribution=attribution,
                        installed=True,
                        languages=model.languages,
                        version=model.version,
                    )
                ],
            )
        ]
    )


async def serve(config) -> int:
    metrics = SttMetrics()
    backend = create_backend(config)
    engine = Engine(backend, config.workers, metrics)
    holder: dict[str, SttService] = {}

    def load() -> None:
        backend.load()
        check_language(config, backend.languages)
        holder["service"] = SttService(config, engine, metrics, build_info(backend))

    try:
        return await run_service(
            config,
            service="stt",
            metrics=metrics,
            load=load,
            factory=lambda writer, limits: holder["service"].connection(writer, limits),
        )
    finally:
        engine.shutdown()


def main(argv: list[str] | None = None) -> None:
    config = resolve("wyoming-stt", "Wyoming speech-to-text server", "STT", OPTIONS, argv, check=check_config)
    setup_logging(config.log_level)
    if config.cpu_threads == 0:
        config.cpu_threads = max(1, (os.cpu_count() or 2) // max(1, config.workers))
    main_entry(lambda: serve(config))


if __name__ == "__main__":
    main(sys.argv[1:])
