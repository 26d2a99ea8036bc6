"""Exactness of the STT speed-ups that reuse work: the window cache and incremental VAD.

Both hook faster-whisper below its public API; these tests fail loudly if an upgrade
changes what they rely on, and prove that reuse never changes a word.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.vad import get_vad_model

from speech_corpus import long_utterance
from wyoming_stt.backends.faster_whisper import SileroStream, bundled_tiny_en
from wyoming_stt.backends.whisper_model import CachingWhisperModel


def test_faster_whisper_hooks_keep_their_shape():
    assert list(inspect.signature(WhisperModel.encode).parameters) == ["self", "features"]
    assert list(inspect.signature(WhisperModel.generate_with_fallback).parameters) == [
        "self", "encoder_output", "prompt", "tokenizer", "options"]
    source = inspect.getsource(WhisperModel.generate_segments)
    assert "self.encode(segment)" in source
    assert "self.generate_with_fallback(encoder_output, prompt, tokenizer, options)" in source
    assert hasattr(get_vad_model(), "session")


@pytest.fixture(scope="module")
def long_audio() -> np.ndarray:
    return long_utterance(count=8).samples()  # ~34 s: two windows


def test_incremental_vad_matches_one_call_over_the_stream(long_audio):
    whole = long_audio[: long_audio.size // 512 * 512]
    expected = get_vad_model()(whole).reshape(-1)
    windows = whole.reshape(-1, 512)
    for step in (1, 2, 7, 64):
        stream = SileroStream()
        got = np.concatenate([stream.score(windows[i:i + step]) for i in range(0, len(windows), step)])
        assert np.array_equal(got, expected), step


def _text(model, audio) -> str:
    segments, _ = model.transcribe(audio, language="en", beam_size=5, vad_filter=True)
    return " ".join(s.text.strip() for s in segments)


def test_window_cache_hits_and_never_changes_the_words(long_audio):
    path = str(bundled_tiny_en())
    plain = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2)
    cached = CachingWhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2)
    # Decodes of a growing stream, as partials and speculative finals make them. Whether its
    # first window hits depends on the BLAS: numpy's OpenBLAS may round the mel features of a
    # window differently for a longer stream (its kernels block by the matrix's width), and a
    # window whose features differ in one bit must miss. So only the words are asserted here.
    for seconds in (31, 33):
        prefix = long_audio[: seconds * 16000]
        assert _text(cached, prefix) == _text(plain, prefix)
    assert _text(cached, long_audio) == _text(plain, long_audio)
    # The same audio again: the same features, so every window from the cache, the same words.
    hits = cached.hits
    assert _text(cached, long_audio) == _text(plain, long_audio)
    assert cached.hits >= hits + 2
