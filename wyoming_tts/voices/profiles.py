"""Voice profiles on disk: `<voices dir>/<name>/reference.wav` + `voice.json`.

A profile is a name, its languages, a reference clip of 3-30 s of one person speaking,
the clip's transcript and an optional description. Clips arrive in any PCM format (over
Wyoming, or dropped into the folder as a PCM WAV of any rate, width and channel count) and
are stored as 24 kHz mono 16-bit WAV, the rate cloning models take. Every check runs
before anything is written, and a profile appears atomically (written to a hidden temporary
folder, then renamed), so bad input saves nothing and a crash leaves no half profile.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import tempfile
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice_common.audio import AudioFormatError, PcmConverter, check_format, float_to_pcm16

_LOGGER = logging.getLogger(__name__)

CLIP_RATE = 24000
CLIP_FILE = "reference.wav"
MANIFEST_FILE = "voice.json"
MIN_SECONDS = 3.0
MAX_SECONDS = 30.0
MAX_TRANSCRIPT_CHARS = 1000
MAX_DESCRIPTION_CHARS = 300
#: Letters, digits, '_', '-', '.', not starting with '.' or '-': no path can be spelled.
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
#: A clip whose loudest 50 ms window stays below this (float peak) holds no speech.
SILENCE_PEAK = 0.02
#: ... or whose windows above a tenth of the loudest one add up to less than this.
MIN_VOICED_SECONDS = 1.0


class ProfileError(ValueError):
    """A profile cannot be created or read; `code` says why (for the wire)."""

    def __init__(self, text: str, code: str = "bad_request") -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class VoiceProfile:
    name: str
    languages: tuple[str, ...]
    transcript: str
    description: str
    folder: Path
    #: sha256 of the stored clip, the transcript and the languages: what a prompt is made of.
    fingerprint: str

    @property
    def clip_path(self) -> Path:
        return self.folder / CLIP_FILE

    def clip(self) -> np.ndarray:
        """The reference clip as float32 mono at CLIP_RATE."""
        with wave.open(str(self.clip_path), "rb") as handle:
            pcm = handle.readframes(handle.getnframes())
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ProfileError("a voice needs a 'name'")
    if not NAME.match(name) or ".." in name:
        raise ProfileError(f"voice name {name!r} is not allowed (use 1-64 letters, digits, '_', '-', '.')")
    return name


def check_text(transcript: object, languages: object, description: object) -> tuple[str, tuple[str, ...], str]:
    """The transcript, languages and description of a new profile, or ProfileError."""
    if not isinstance(transcript, str) or not transcript.strip():
        raise ProfileError("a voice needs the 'transcript' of its reference clip")
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        raise ProfileError(f"transcript longer than {MAX_TRANSCRIPT_CHARS} characters", "too_large")
    if isinstance(languages, str):
        languages = [languages]
    if not isinstance(languages, list | tuple) or not languages:
        raise ProfileError("a voice needs its 'language' (e.g. en_US, or a list)")
    for lang in languages:
        if not isinstance(lang, str) or not LANGUAGE.match(lang):
            raise ProfileError(f"language {lang!r} is not a language tag (e.g. en_US)")
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise ProfileError(f"'description' must be text of at most {MAX_DESCRIPTION_CHARS} characters")
    return transcript.strip(), tuple(languages), description.strip()


def to_clip(pcm: bytes, rate: int, width: int, channels: int) -> np.ndarray:
    """Any PCM -> float32 mono at CLIP_RATE, checked for length and speech (ProfileError)."""
    try:
        rate, width, channels = check_format(rate, width, channels)
    except AudioFormatError as err:
        raise ProfileError(str(err), "invalid_format") from err
    if len(pcm) % (width * channels):
        raise ProfileError("the reference audio is not whole samples of its format", "invalid_format")
    seconds = len(pcm) / (rate * width * channels)
    if seconds < MIN_SECONDS:
        raise ProfileError(f"reference clip of {seconds:.1f} s is too short (at least {MIN_SECONDS:g} s)")
    if seconds > MAX_SECONDS:
        raise ProfileError(f"reference clip of {seconds:.1f} s is too long (at most {MAX_SECONDS:g} s)", "too_large")
    converter = PcmConverter(rate, width, channels, target_rate=CLIP_RATE)
    samples = np.concatenate([converter.convert(pcm), converter.flush()]).astype(np.float32)
    _check_speech(samples)
    return samples


def _check_speech(samples: np.ndarray) -> None:
    window = CLIP_RATE // 20
    usable = len(samples) // window * window
    peaks = np.abs(samples[:usable]).reshape(-1, window).max(axis=1) if usable else np.zeros(1)
    loudest = float(peaks.max())
    if loudest < SILENCE_PEAK:
        raise ProfileError("the reference clip is silent")
    voiced = float((peaks > loudest / 10).sum()) * window / CLIP_RATE
    if voiced < MIN_VOICED_SECONDS:
        raise ProfileError(f"the reference clip holds only {voiced:.1f} s of sound (at least {MIN_VOICED_SECONDS:g} s)")


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(CLIP_RATE)
        handle.writeframes(float_to_pcm16(samples))
    return buffer.getvalue()


def _fingerprint(clip: bytes, transcript: str, languages: tuple[str, ...]) -> str:
    digest = hashlib.sha256(clip)
    digest.update(json.dumps([transcript, list(languages)]).encode())
    return digest.hexdigest()


class VoiceStore:
    """The profiles folder: list, read, create and delete profiles (thread safe)."""

    def __init__(self, root: Path, max_profiles: int = 64) -> None:
        self.root = root
        self.max_profiles = max_profiles
        self._lock = threading.Lock()
        self._profiles: dict[str, VoiceProfile] = {}

    def scan(self) -> list[VoiceProfile]:
        """(Re)read every profile folder; a broken one is logged and left out."""
        self.root.mkdir(parents=True, exist_ok=True)
        found: dict[str, VoiceProfile] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                found[folder.name] = self._read(folder)
            except (ProfileError, OSError, ValueError, wave.Error) as err:
                _LOGGER.error("skipping voice profile %s: %s", folder, err)
        with self._lock:
            self._profiles = found
        return list(found.values())

    def _read(self, folder: Path) -> VoiceProfile:
        name = check_name(folder.name)
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ProfileError(f"{MANIFEST_FILE} must hold an object")
        transcript, languages, description = check_text(
            manifest.get("transcript"), manifest.get("languages", manifest.get("language")),
            manifest.get("description"))
        clip_path = folder / CLIP_FILE
        with wave.open(str(clip_path), "rb") as handle:
            rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
            pcm = handle.readframes(handle.getnframes())
        if (rate, width, channels) != (CLIP_RATE, 2, 1):  # a clip dropped in by hand: store it as 24 kHz mono
            data = _wav_bytes(to_clip(pcm, rate, width, channels))
            staging = clip_path.with_name(f".{CLIP_FILE}.new")
            staging.write_bytes(data)
            staging.replace(clip_path)  # atomic: a crash leaves the old clip or the new one
            _LOGGER.info("voice profile %s: reference clip converted to %d Hz mono", name, CLIP_RATE)
        else:
            to_clip(pcm, rate, width, channels)  # length and silence checks
            data = clip_path.read_bytes()
        return VoiceProfile(name, languages, transcript, description, folder,
                            _fingerprint(data, transcript, languages))

    def profiles(self) -> list[VoiceProfile]:
        with self._lock:
            return list(self._profiles.values())

    def get(self, name: str) -> VoiceProfile | None:
        with self._lock:
            return self._profiles.get(name)

    def create(self, name: str, transcript: object, languages: object, description: object,
               pcm: bytes, rate: int, width: int, channels: int) -> VoiceProfile:
        """Check everything, then write the profile atomically (blocking: run in a thread)."""
        name = check_name(name)
        transcript, langs, description = check_text(transcript, languages, description)
        clip = _wav_bytes(to_clip(pcm, rate, width, channels))
        manifest = {"name": name, "languages": list(langs), "transcript": transcript, "description": description}
        with self._lock:
            if name in self._profiles or (self.root / name).exists():
                raise ProfileError(f"a voice named {name!r} already exists", "voice_exists")
            if len(self._profiles) >= self.max_profiles:
                raise ProfileError(f"already {self.max_profiles} voice profiles (the limit)", "too_large")
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".new-", dir=self.root))
            try:
                (staging / CLIP_FILE).write_bytes(clip)
                (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
                staging.rename(self.root / name)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            profile = VoiceProfile(name, langs, transcript, description, self.root / name,
                                   _fingerprint(clip, transcript, langs))
            self._profiles[name] = profile
        _LOGGER.info("voice profile %s created (%s)", name, ", ".join(langs))
        return profile

    def delete(self, name: str) -> None:
        """Remove a profile and everything beside it (its cached prompts)."""
        name = check_name(name)
        with self._lock:
            profile = self._profiles.pop(name, None)
            if profile is None:
                raise ProfileError(f"no voice named {name!r}", "unknown_voice")
            trash = self.root / f".deleted-{name}"
            shutil.rmtree(trash, ignore_errors=True)
            profile.folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        _LOGGER.info("voice profile %s deleted", name)
