"""Qwen3-TTS-12Hz Base (qwen-tts 0.1.1, torch): cloned voices from the service's voice profiles.

`--qwen-model` is a local folder with the official checkpoints' layout (config.json,
generation_config.json, model.safetensors, the text tokenizer files, speech_tokenizer/),
e.g. Qwen3-TTS-12Hz-0.6B-Base or -1.7B-Base, or a hub name that the library downloads
when the machine has internet access. Only Base models clone; CustomVoice/VoiceDesign
and 25 Hz checkpoints are refused at load with a clear error.

Every voice profile is a voice of this backend. Its clone prompt (speaker embedding and
the reference clip's codes, "ICL" mode) comes from the service's prompt cache, which calls
`encode_prompt` once per profile. Audio streams as the talker generates frames
(qwen3_stream); 24 kHz, 16-bit mono.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from voice_common.audio import float_to_pcm16

from ..config import Qwen3Config
from ..voices import PromptCache, VoiceProfile, VoiceStore
from .base import AudioOut, BackendError, SynthesisOptions, TtsBackend, VoiceSpec
from .qwen3_imports import import_qwen_tts
from .qwen3_stream import FrameTap, decode_stream, stream_frames

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 24000
ATTRIBUTION = ("Qwen3-TTS (Alibaba Qwen), cloned voice profile", "https://github.com/QwenLM/Qwen3-TTS")
#: Wyoming/ISO language -> the model's language names (others: "auto").
LANGUAGES = {
    "zh": "chinese", "en": "english", "de": "german", "it": "italian", "pt": "portuguese",
    "es": "spanish", "ja": "japanese", "ko": "korean", "fr": "french", "ru": "russian",
}
#: Frames per piece at most: 2 s plus 0.16 s per character, so a model that never says
#: "end" cannot run away (12.5 frames are one second).
BASE_FRAMES = 25
FRAMES_PER_CHAR = 2


class Qwen3Backend(TtsBackend):
    name = "qwen3"
    #: A call's fixed cost (prompt prefill) is large against a few words: no separate head.
    short_first_piece = False

    def __init__(self, config: Qwen3Config, store: VoiceStore, prompts: PromptCache) -> None:
        self._source = config.qwen_model
        self._device = config.device
        self._dtype_name = config.qwen_dtype
        self._store = store
        self._prompts = prompts
        self._model: Any = None
        self._tap: FrameTap | None = None
        self._languages: set[str] = set()
        self._max_frames = 0
        self.prompt_kind = "qwen3"

    # -- loading ---------------------------------------------------------
    def load(self) -> None:
        if not self._source:
            raise BackendError("--backend qwen3 needs --qwen-model (a Qwen3-TTS-12Hz Base folder or hub name)")
        for noisy in ("transformers", "qwen_tts"):  # "Setting pad_token_id ..." per sentence, config defaults
            logging.getLogger(noisy).setLevel(logging.ERROR)
        qwen_tts = import_qwen_tts()
        import torch
        import transformers

        transformers.logging.set_verbosity_error()  # it resets its own level at import

        if self._device == "cuda" and not torch.cuda.is_available():
            raise BackendError("--device cuda: torch sees no CUDA GPU")
        source = str(Path(self._source).expanduser()) if Path(self._source).expanduser().exists() else self._source
        _check_kind(Path(source) / "config.json", self._source)
        try:
            model = qwen_tts.Qwen3TTSModel.from_pretrained(source, dtype=self._dtype(torch))
        except Exception as err:  # missing files, hub unreachable, wrong layout
            raise BackendError(f"qwen3 model {self._source} could not be loaded: {err}") from err
        inner = model.model
        if inner.tts_model_type != "base" or inner.tokenizer_type != "qwen3_tts_tokenizer_12hz":
            raise BackendError(
                f"qwen3 model {self._source} is a {inner.tts_model_type} model with the {inner.tokenizer_type}: "
                "voice cloning needs a Qwen3-TTS-12Hz ...-Base checkpoint")
        inner.to(self._device)
        inner.speech_tokenizer.model.to(self._device)
        model.device = inner.device
        inner.speech_tokenizer.device = inner.device
        _thread_local_rope_deltas(inner.talker)
        self._model = model
        self._tap = FrameTap(inner.talker)
        self._languages = {str(lang).lower() for lang in inner.get_supported_languages()}
        self._max_frames = int((model.generate_defaults or {}).get("max_new_tokens", 2048))
        # prompts belong to one model: its configuration's digest names their files
        settings = json.dumps(inner.config.to_dict(), sort_keys=True, default=str)
        digest = hashlib.sha256(settings.encode()).hexdigest()[:12]
        self.prompt_kind = f"qwen3-12hz-{digest}"
        _LOGGER.info("qwen3 model %s loaded on %s (%s)", self._source, self._device, inner.dtype)

    def _dtype(self, torch: Any) -> Any:
        name = self._dtype_name
        if name == "auto":
            name = "bfloat16" if self._device == "cuda" else "float32"
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]

    # -- voices ------------------------------------------------------------
    def voices(self) -> list[VoiceSpec]:
        if self._model is None:
            return []
        return [self._spec(profile) for profile in self._store.profiles()]

    @staticmethod
    def _spec(profile: VoiceProfile) -> VoiceSpec:
        return VoiceSpec(
            name=profile.name, languages=profile.languages,
            description=profile.description or f"{profile.name} (cloned voice, Qwen3-TTS)",
            attribution_name=ATTRIBUTION[0], attribution_url=ATTRIBUTION[1], sample_rate=SAMPLE_RATE,
            version=profile.fingerprint[:12],  # a profile re-created from another clip is another voice
        )

    # -- prompts (called by the service's PromptCache) ----------------------
    def encode_prompt(self, profile: VoiceProfile) -> Any:
        (item,) = self._model.create_voice_clone_prompt(
            ref_audio=(profile.clip(), 24000), ref_text=profile.transcript, x_vector_only_mode=False)
        return item

    def prompt_nbytes(self, prompt: Any) -> int:
        tensors = [prompt.ref_code, prompt.ref_spk_embedding]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None) + len(prompt.ref_text or "")

    def save_prompt(self, prompt: Any, path: Path) -> None:
        import torch

        torch.save({"ref_code": prompt.ref_code.cpu(), "ref_spk_embedding": prompt.ref_spk_embedding.cpu(),
                    "ref_text": prompt.ref_text}, path)

    def load_prompt(self, path: Path) -> Any:
        import torch
        from qwen_tts import VoiceClonePromptItem

        saved = torch.load(path, map_location=self._model.device, weights_only=True)
        return VoiceClonePromptItem(ref_code=saved["ref_code"], ref_spk_embedding=saved["ref_spk_embedding"],
                                    x_vector_only_mode=False, icl_mode=True, ref_text=str(saved["ref_text"]))

    # -- serving ---------------------------------------------------------
    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> AudioOut:
        profile = self._store.get(voice)
        if profile is None or self._model is None or self._tap is None:
            raise BackendError(f"qwen3 has no voice {voice!r}")
        model, tap = self._model, self._tap
        language = self._language(options.language or (profile.languages[0] if profile.languages else None))
        max_frames = min(self._max_frames, BASE_FRAMES + FRAMES_PER_CHAR * len(text))

        def chunks() -> Iterator[bytes]:
            prompt = self._prompts.prompt(profile, self)
            inner = model.model
            speech = inner.speech_tokenizer.model

            def generate() -> Any:
                input_ids = model._tokenize_texts([model._build_assistant_text(text)])
                ref_ids = [model._tokenize_texts([model._build_ref_text(prompt.ref_text)])[0]]
                return inner.generate(
                    input_ids=input_ids, ref_ids=ref_ids, languages=[language], non_streaming_mode=False,
                    voice_clone_prompt=model._prompt_items_to_voice_clone_prompt([prompt]),
                    **model._merge_generate_kwargs(max_new_tokens=max_frames))

            frames = stream_frames(tap, generate, eos=inner.config.talker_config.codec_eos_token_id)
            made = [0]

            def counted() -> Iterator[Any]:
                for frame in frames:
                    made[0] += 1
                    yield frame

            finished = False
            try:
                for audio in decode_stream(speech.decoder, counted(), prompt.ref_code, speech.decode_upsample_rate):
                    yield float_to_pcm16(np.asarray(audio, dtype=np.float32))
                finished = True
            finally:
                frames.close()  # stops the generation thread when the consumer left early
                if not finished:
                    _LOGGER.info("qwen3: generation stopped after %d of %d frames", made[0], max_frames)

        return AudioOut(rate=SAMPLE_RATE, chunks=chunks())

    def _language(self, requested: str | None) -> str:
        if not requested:
            return "auto"
        name = LANGUAGES.get(requested.replace("_", "-").split("-")[0].lower(), "auto")
        return name if name in self._languages else "auto"


def _check_kind(config: Path, source: str) -> None:
    """Refuse a local model that cannot clone before loading it (a 25 Hz one would need sox and
    torchaudio just to load)."""
    if not config.is_file():
        return  # a hub name: checked after the download
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except ValueError as err:
        raise BackendError(f"qwen3 model {source}: config.json is not JSON ({err})") from err
    kind, tokenizer = raw.get("tts_model_type"), raw.get("tokenizer_type")
    if kind != "base" or tokenizer != "qwen3_tts_tokenizer_12hz":
        raise BackendError(f"qwen3 model {source} is a {kind} model with the {tokenizer}: "
                           "voice cloning needs a Qwen3-TTS-12Hz ...-Base checkpoint")


def _thread_local_rope_deltas(talker: Any) -> None:
    """qwen-tts keeps the talker's rope offsets of the running generation in `talker.rope_deltas`,
    one attribute shared by every thread: two concurrent requests would use each other's. A
    data descriptor on the talker's class keeps that attribute per thread instead."""
    cls = type(talker)
    if not isinstance(cls.__dict__.get("rope_deltas"), _PerThread):
        cls.rope_deltas = _PerThread()
    object.__setattr__(talker, "_per_thread", threading.local())


class _PerThread:
    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.__dict__["_per_thread"], "value", None) if "_per_thread" in obj.__dict__ else None

    def __set__(self, obj: Any, value: Any) -> None:
        if "_per_thread" in obj.__dict__:
            obj.__dict__["_per_thread"].value = value
        else:
            obj.__dict__["_rope_deltas_unshared"] = value
