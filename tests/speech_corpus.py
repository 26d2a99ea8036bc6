"""Speech the tests and the benchmark decode: varied speakers, lengths, levels and formats.

Everything is built from what the repository or its installed packages carry: the JFK
recording in tests/data (a human voice), espeak-ng (several voices and speeds) and the
bundled Piper voice. A "long utterance" is several commands from different speakers with
pauses between them, like a dictated note or a reading of a list; `hard_cases` adds the
inputs where speed tricks have gone wrong before (quiet speech after a loud chime, a quiet
continuation, other rates and channel counts).
"""

from __future__ import annotations

import functools
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers import JFK_FLAC, JFK_TEXT, decode_audio, espeak_voice

RATE = 16000

#: Human segments of jfk.flac, cut at its pauses (seconds).
JFK_SEGMENTS = [
    (0.0, 2.45, "And so, my fellow Americans"),
    (3.2, 4.9, "ask not"),
    (5.2, 10.75, "what your country can do for you, ask what you can do for your country"),
]

#: (speaker, text) of the long utterance: espeak-ng voices, Piper's joe and JFK alternate.
LONG_SCRIPT = [
    ("piper", "Add milk, eggs and two loaves of bread to the shopping list."),
    ("espeak:en-us", "Turn off all the lights in the living room please."),
    ("jfk:2", ""),
    ("espeak:en-gb", "Set a timer for ten minutes and start the music in the kitchen."),
    ("piper", "Remind me to call my mother tomorrow at six in the evening."),
    ("espeak:en-us+f3", "What will the weather be like tomorrow morning in Berlin?"),
    ("jfk:0", ""),
    ("piper", "Open the garage door and switch off the heating in the basement."),
    ("espeak:en-us+m3", "Lock the front door and turn on the porch light."),
    ("piper", "Tell me when the washing machine is done."),
    ("espeak:en-gb", "Play the evening news on the radio in the bedroom."),
    ("piper", "How long does it take to drive to the airport from here?"),
]


@dataclass(frozen=True)
class Speech:
    """16 kHz 16-bit mono PCM with the words it says."""

    name: str
    text: str
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE

    def samples(self) -> np.ndarray:
        return np.frombuffer(self.pcm, dtype="<i2").astype(np.float32) / 32768.0


@functools.lru_cache(maxsize=1)
def _piper_voice():
    from piper import PiperVoice

    from wyoming_tts.backends.piper import BUNDLED_PACKAGE, BUNDLED_VOICE
    from voice_common.models import package_dir

    root = package_dir(*BUNDLED_PACKAGE)
    model = next(root.rglob(f"{BUNDLED_VOICE}.onnx"))
    return PiperVoice.load(str(model))


@functools.lru_cache(maxsize=64)
def piper(text: str) -> bytes:
    """The bundled Piper voice (en_US-joe-medium) saying `text`, as 16 kHz mono PCM."""
    voice = _piper_voice()
    audio = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text))
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        with wave.open(tmp.name, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(voice.config.sample_rate)
            wav.writeframes(audio)
        return decode_audio(Path(tmp.name), RATE)


@functools.lru_cache(maxsize=1)
def _jfk() -> np.ndarray:
    return np.frombuffer(decode_audio(JFK_FLAC, RATE), dtype="<i2")


def jfk() -> Speech:
    return Speech("jfk", JFK_TEXT, _jfk().tobytes())


def jfk_segment(index: int) -> Speech:
    start, end, text = JFK_SEGMENTS[index]
    return Speech(f"jfk-{index}", text, _jfk()[int(start * RATE):int(end * RATE)].tobytes())


def say(speaker: str, text: str) -> Speech:
    """One utterance by `speaker` ('piper', 'espeak:VOICE' or 'jfk:SEGMENT')."""
    if speaker == "piper":
        return Speech("piper", text, piper(text))
    if speaker.startswith("espeak:"):
        return Speech(speaker, text, espeak_voice(text, speaker.split(":", 1)[1], RATE))
    if speaker.startswith("jfk:"):
        return jfk_segment(int(speaker.split(":", 1)[1]))
    raise ValueError(f"unknown speaker {speaker!r}")


def scale(pcm: bytes, dbfs: float) -> bytes:
    """`pcm` with its peak set to `dbfs` (0 = full scale)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    peak = float(np.abs(samples).max()) or 1.0
    return (samples * (32767.0 * 10 ** (dbfs / 20) / peak)).round().astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * RATE)


def room_noise(seconds: float, dbfs: float = -60.0, seed: int = 0) -> bytes:
    """Quiet pink-ish noise with mains hum: what a real microphone hears in a quiet room."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    white = rng.normal(0, 1, n)
    pink = np.convolve(white, np.ones(8) / 8, mode="same")
    hum = 0.3 * np.sin(2 * np.pi * 50 * np.arange(n) / RATE)
    noise = pink + hum
    noise *= 32767.0 * 10 ** (dbfs / 20) / (np.sqrt(np.mean(noise**2)) or 1.0)
    return noise.round().astype("<i2").tobytes()


def long_utterance(pause_s: float = 1.0, count: int | None = None) -> Speech:
    """LONG_SCRIPT's utterances from several speakers, `pause_s` of room noise between them."""
    parts: list[bytes] = []
    texts: list[str] = []
    for i, (speaker, text) in enumerate(LONG_SCRIPT[:count]):
        one = say(speaker, text)
        if parts:
            parts.append(room_noise(pause_s, seed=i))
        parts.append(one.pcm)
        texts.append(one.text)
    return Speech("long", " ".join(texts), b"".join(parts))


def quiet_ending(loud: Speech, quiet: Speech, drop_db: float = 28.0, pause_s: float = 0.5) -> Speech:
    """`loud` at full level, a pause, then `quiet` `drop_db` dB quieter: speech that ends softly."""
    pcm = scale(loud.pcm, -1.0) + silence(pause_s) + scale(quiet.pcm, -1.0 - drop_db)
    return Speech(f"{loud.name}+quiet", f"{loud.text} {quiet.text}", pcm)


def chime(seconds: float = 0.09, amplitude: float = 0.85) -> bytes:
    """A loud two-tone chime (a wake-word confirmation sound)."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = np.sin(2 * np.pi * 880 * t) + np.sin(2 * np.pi * 1320 * t)
    tone *= amplitude / np.abs(tone).max() * np.hanning(t.size) ** 0.2
    return (tone * 32767).round().astype("<i2").tobytes()
