"""Short encoder context: same words as the full 30 s window, loops caught and redone."""

from __future__ import annotations

import types

import numpy as np
import pytest

from helpers import JFK_FLAC, JFK_TEXT, decode_audio, espeak, word_error_rate
from wyoming_stt.backends import DecodeOptions
from wyoming_stt.backends.faster_whisper import FasterWhisperBackend
from wyoming_stt.backends.short_context import FULL_WINDOW, MIN_FRAMES, encoder_frames, looks_like_a_loop

COMMANDS = [
    "Turn on the kitchen lights.",
    "Set a timer for ten minutes.",
    "Please close the garage door and lock the front door.",
    "Remind me to call my mother at six o'clock this evening.",
    "Add milk, eggs and bread to my shopping list.",
]


def _backend(short_context: bool) -> FasterWhisperBackend:
    config = types.SimpleNamespace(
        model="tiny.en", device="cpu", compute_type="int8", cpu_threads=2, workers=1, download_dir=None,
        local_files_only=True, vad=True, no_speech_threshold=0.6, short_context=short_context,
    )
    backend = FasterWhisperBackend(config)
    backend.load()
    return backend


def _floats(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768


def test_encoder_frames_cover_the_audio_with_a_margin():
    assert encoder_frames(16000 * 3) == MIN_FRAMES  # a command: the 10 s minimum
    assert encoder_frames(16000 * 11) == 11 * 100 + 1 + 200  # jfk: audio + 2 s
    assert encoder_frames(16000 * 29) == FULL_WINDOW
    assert encoder_frames(16000 * 60) == FULL_WINDOW


def test_loops_are_recognised():
    assert looks_like_a_loop("Set a timer. " * 12, 3.1, 3.0)
    assert looks_like_a_loop("and asked " * 20, 1.5, 2.0)  # 40 words in 2 s
    assert not looks_like_a_loop(JFK_TEXT, 1.4, 11.0)


@pytest.fixture(scope="module")
def backends():
    return _backend(True), _backend(False)


def test_short_context_is_as_accurate_as_the_full_window(backends):
    short, full = backends
    clips = [(text, _floats(espeak(text))) for text in COMMANDS]
    clips.append((JFK_TEXT, _floats(decode_audio(JFK_FLAC))))
    options = DecodeOptions(language="en")
    short_wer = [word_error_rate(text, short.transcribe(audio, options).text) for text, audio in clips]
    full_wer = [word_error_rate(text, full.transcribe(audio, options).text) for text, audio in clips]
    assert np.mean(short_wer) <= np.mean(full_wer) + 0.02, (short_wer, full_wer)
    assert short_wer[-1] == 0.0  # the human recording, word for word
