"""`python -m wyoming_stt` / `wyoming-stt`: the speech-to-text server."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from voice_common import __version__
from voice_common.app import main_entry, run_service, setup_logging
from voice_common.config import ConfigError
from voice_common.models import ModelError
from voice_common.settings import load, options_of

from .backends import SttBackend, create_backend
from .config import SttConfig, WhisperConfig
from .engine import Engine
from .handler import SttService, whisper_language
from .metrics import SttMetrics

#: Every option (flag, environment twin, TOML key), for --help, the README and the tests.
OPTIONS = options_of(SttConfig)


def looks_like_a_path(model: str) -> bool:
    """A directory, not a name: `/x`, `./x`, `~/x`, `a/b/c` (a hub name has one '/': `Systran/x`)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or model.endswith("/")


def check_config(config: SttConfig) -> None:
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
    language = whisper_language(config.language)
    if language and language != "en" and model.lower().endswith(".en"):
        raise ConfigError(
            f"--language {config.language}: model {model} is English-only and cannot do {language!r} "
            "(use a multilingual model such as --model base, or leave --language unset)"
        )


def check_language(config: SttConfig, languages: Sequence[str]) -> None:
    """After loading: --language must be one the model has (e.g. a local English-only model)."""
    language = whisper_language(config.language)
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


async def serve(config: SttConfig) -> int:
    metrics = SttMetrics()
    backend = create_backend(config.backend, WhisperConfig.of(config))
    engine = Engine(backend, config.workers, metrics)
    holder: dict[str, SttService] = {}

    def load_model() -> None:
        backend.load()
        languages = backend.model().languages
        check_language(config, languages)
        holder["service"] = SttService(config, engine, metrics, build_info(backend), languages)

    try:
        return await run_service(
            config,
            service="stt",
            metrics=metrics,
            load=load_model,
            factory=lambda writer, limits: holder["service"].connection(writer, limits),
        )
    finally:
        engine.shutdown()


def main(argv: list[str] | None = None) -> None:
    config = load(SttConfig, "wyoming-stt", "Wyoming speech-to-text server", argv, check=check_config)
    setup_logging(config.log_level)
    main_entry(lambda: serve(config))


if __name__ == "__main__":
    main(sys.argv[1:])
