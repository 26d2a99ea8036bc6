"""`python -m wyoming_tts` / `wyoming-tts`: the text-to-speech server."""

from __future__ import annotations

import sys
from pathlib import Path

from wyoming.event import Event
from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker

from voice_common import __version__
from voice_common.app import main_entry, run_service, setup_logging
from voice_common.config import ConfigError
from voice_common.server import SessionSlots
from voice_common.settings import load, options_of
from voice_common.voice_events import ProfileSupport, mark_profiles

from .backends import VoiceSpec, create_backend
from .config import PiperConfig, TtsConfig
from .engine import Synthesizer
from .handler import TtsConnection, TtsService
from .metrics import TtsMetrics
from .voices import PromptCache, VoiceStore

#: Backends that speak voice profiles (cloned voices).
CLONING_BACKENDS = {"qwen3"}

#: Every option (flag, environment twin, TOML key), for --help, the README and the tests.
OPTIONS = options_of(TtsConfig)


def check_config(config: TtsConfig) -> None:
    """Paths that do not exist, found before any model loads (each a one-line error, exit 2)."""
    files = [("kokoro_model", config.kokoro_model), ("kokoro_voices", config.kokoro_voices)]
    if config.model and (config.model.endswith(".onnx") or "/" in config.model or config.model.startswith("~")):
        files.append(("model", config.model))  # a Piper voice file, not a voice name
    for name, value in files:
        if value and not Path(value).expanduser().is_file():
            raise ConfigError(f"--{name.replace('_', '-')} {value}: no such file")
    if "qwen3" in config.chain() and not config.qwen_model:
        raise ConfigError("--backend qwen3 needs --qwen-model (a Qwen3-TTS-12Hz Base folder or hub name)")
    if config.qwen_model and (config.qwen_model.startswith(("/", ".", "~"))) \
            and not (Path(config.qwen_model).expanduser() / "config.json").is_file():
        raise ConfigError(f"--qwen-model {config.qwen_model}: no Qwen3-TTS model folder (no config.json)")
    for name, value in (("voices_dir", config.voices_dir), ("kokoro_torch_dir", config.kokoro_torch_dir)):
        if value and not Path(value).expanduser().is_dir():
            raise ConfigError(f"--{name.replace('_', '-')} {value}: no such directory")
    check_piper_voice(config)


def check_piper_voice(config: TtsConfig) -> None:
    """A Piper voice named by --voice (or --model) that is not installed must be in the voices
    index: a typo is one line and exit 2 here, not a failed backend later (reads the index only)."""
    if config.voice and config.backend == "piper" and config.model and config.model != config.voice:
        raise ConfigError(f"--voice {config.voice} and --model {config.model} name two default voices: give one")
    if config.voice and "piper" not in config.chain():
        raise ConfigError(f"--voice {config.voice} is a Piper voice: add piper to --backend or --fallback")
    flag, name = ("voice", config.voice) if config.voice else ("model", config.model)
    if not name or "piper" not in config.chain() or (flag == "model" and config.backend != "piper"):
        return
    from .backends import BackendError
    from .backends.piper import PiperBackend

    try:
        PiperBackend(PiperConfig.of(config), name).check_default()
    except BackendError as err:
        raise ConfigError(f"--{flag} {name}: {err}") from err


def build_info(voices: list[VoiceSpec]) -> Info:
    return Info(tts=[TtsProgram(
        name="wyoming-voice-services-tts",
        description="wyoming-voice-services text to speech (Piper, Kokoro, Qwen3-TTS cloned voices)",
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


async def serve(config: TtsConfig) -> int:
    metrics = TtsMetrics()
    store = prompts = None
    if CLONING_BACKENDS & set(config.chain()):
        store = VoiceStore(Path(config.voice_profiles_dir).expanduser(), config.max_voice_profiles)
        prompts = PromptCache(config.prompt_cache_entries, int(config.prompt_cache_mb * 1024 * 1024), metrics.prompts)
    voices = (store, prompts) if store is not None and prompts is not None else None
    backends = [create_backend(name, config, config.model if i == 0 else None, voices)
                for i, name in enumerate(config.chain())]
    engine = Synthesizer(backends, metrics, int(config.cache_mb * 1024 * 1024), config.workers, config.speaker)
    holder: dict[str, TtsService] = {}

    def describe() -> Event:
        """`info`, marked with the voice profiles when this service keeps them (see voice_common.voice_events)."""
        info = build_info(engine.voices()).event()
        if store is None:
            return info
        return mark_profiles(info, ProfileSupport(tuple(p.name for p in store.profiles()), config.voice_edits))

    def load_models() -> None:
        if store is not None:
            store.scan()
        engine.load()
        holder["service"] = TtsService(
            engine=engine, metrics=metrics, slots=SessionSlots(config.max_sessions),
            describe=describe, config=config, store=store, prompts=prompts,
        )

    try:
        return await run_service(
            config, service="tts", metrics=metrics, load=load_models,
            factory=lambda writer, limits: TtsConnection(writer, limits, holder["service"]),
        )
    finally:
        engine.shutdown()


def main(argv: list[str] | None = None) -> None:
    config = load(TtsConfig, "wyoming-tts", "Wyoming text-to-speech server (Piper, Kokoro, Qwen3-TTS)", argv,
                  check=check_config)
    setup_logging(config.log_level)
    main_entry(lambda: serve(config))


if __name__ == "__main__":
    main(sys.argv[1:])
