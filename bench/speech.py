"""The audio the STT benchmark plays: human speech (JFK) and generated commands.

All clips are 16 kHz 16-bit mono PCM with their reference text. Commands come in two
length classes (about 3 s and about 5 s): human segments cut from jfk.flac at pauses,
espeak-ng speech and Piper speech (the bundled en_US-joe-medium voice, run in-process).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .common import REPO

sys.path.insert(0, str(REPO / "tests"))
from helpers import JFK_FLAC, JFK_TEXT, decode_audio, espeak  # noqa: E402
import speech_corpus as corpus  # noqa: E402

RATE = 16000

#: Human segments of jfk.flac, cut at pauses (seconds, found from the energy envelope).
JFK_SEGMENTS = {
    "3s": [(7.85, 10.75, "ask what you can do for your country"),
           (0.0, 2.45, "And so, my fellow Americans")],
    "5s": [(5.2, 10.75, "what your country can do for you, ask what you can do for your country")],
}
ESPEAK_TEXTS = {
    "3s": ["Turn off all the lights in the living room please",
           "Set a timer for ten minutes and start the music"],
    "5s": ["What will the weather be like tomorrow morning in Berlin and will it rain in Hamburg",
           "Set the thermostat in the bedroom to twenty one degrees tonight and close all the blinds"],
}
PIPER_TEXTS = {
    "3s": ["Lock the front door and turn on the porch light in the garden please",
           "Play some relaxing jazz music in the kitchen and turn the volume down"],
    "5s": ["Remind me to call my mother tomorrow at six in the evening and add milk and bread to the shopping list",
           "Open the garage door, switch off the heating in the basement and tell me when the washing machine is done"],
}


@dataclass
class Clip:
    name: str
    kind: str  # human | espeak | piper
    text: str
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


def _piper_pcm(texts: list[str]) -> list[bytes]:
    """The bundled Piper voice (the same .onnx the reference loads) saying each text."""
    return [corpus.piper(text) for text in texts]


def jfk() -> Clip:
    return Clip("jfk-11s", "human", JFK_TEXT, decode_audio(JFK_FLAC, RATE))


def commands(quick: bool = False) -> dict[str, list[Clip]]:
    """{'3s': [...], '5s': [...]}: human, espeak and Piper commands of each length."""
    full = np.frombuffer(decode_audio(JFK_FLAC, RATE), dtype="<i2")
    out: dict[str, list[Clip]] = {}
    for cls in ("3s", "5s"):
        clips = []
        for i, (a, b, text) in enumerate(JFK_SEGMENTS[cls]):
            clips.append(Clip(f"jfk-{cls}-{i}", "human", text, full[int(a * RATE):int(b * RATE)].tobytes()))
        espeak_texts = ESPEAK_TEXTS[cls][:1] if quick else ESPEAK_TEXTS[cls]
        for i, text in enumerate(espeak_texts):
            clips.append(Clip(f"espeak-{cls}-{i}", "espeak", text, espeak(text, RATE)))
        piper_texts = PIPER_TEXTS[cls][:1] if quick else PIPER_TEXTS[cls]
        for i, (text, pcm) in enumerate(zip(piper_texts, _piper_pcm(piper_texts))):
            clips.append(Clip(f"piper-{cls}-{i}", "piper", text, pcm))
        out[cls] = clips
    return out


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * RATE)


def room_noise(seconds: float) -> bytes:
    """Trailing audio a real microphone sends: quiet noise with mains hum (-60 dBFS)."""
    return corpus.room_noise(seconds, dbfs=-60.0, seed=11)


def long_speech(quick: bool = False) -> list[Clip]:
    """45-60 s of speech: ten-plus commands from five voices (human, espeak-ng, Piper) with
    pauses of room noise between them; the second adds the whole JFK recording."""
    one = corpus.long_utterance(pause_s=1.0)
    clips = [Clip("long-pauses", "mixed", one.text, one.pcm)]
    if not quick:
        two = corpus.long_utterance(pause_s=0.5)
        jfk_clip = corpus.jfk()
        clips.append(Clip("long-jfk", "mixed", f"{jfk_clip.text} {two.text}",
                          jfk_clip.pcm + corpus.room_noise(0.5) + two.pcm))
    return clips


def quiet_endings(quick: bool = False) -> list[Clip]:
    """Commands whose last words are 28 dB quieter than the first (after a 0.5 s pause)."""
    pairs = [("piper", "Add milk to the shopping list.", "piper", "And also some bread."),
             ("espeak:en-us", "Turn on the lights in the hall.", "espeak:en-us", "And in the kitchen too.")]
    out = []
    for a, first, b, second in pairs[:1] if quick else pairs:
        speech = corpus.quiet_ending(corpus.say(a, first), corpus.say(b, second))
        out.append(Clip(f"quiet-{a.split(':')[0]}", a.split(":")[0], speech.text, speech.pcm))
    return out
