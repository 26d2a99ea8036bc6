"""--sentence-silence means what it means in wyoming-piper: that much silence between sentences,
once per boundary, none after the last; also when a sentence is spoken in pieces."""

from __future__ import annotations

import numpy as np
import pytest

from tts_helpers import BUNDLED_PIPER, run, start_tts, stop_tts, stream, synthesize
from wyoming_tts.text import ends_sentence

#: Two sentences; the first is long enough to be spoken as a head plus the rest.
TEXT = "The quick brown fox jumps over the lazy dog near the river. It was very fast."


@pytest.fixture(scope="module")
def tts():
    server = start_tts("--sentence-silence", "1.0", "--cache-mb", "0")
    yield server
    stop_tts(server)


def silent_runs(audio: bytes, rate: int, at_least: float = 0.4) -> list[tuple[float, float]]:
    """(start, length) in seconds of every run of exact zero samples of at least `at_least` s."""
    zero = np.frombuffer(audio, dtype="<i2") == 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], zero.astype(np.int8), [0]])))
    runs = [(start / rate, (end - start) / rate) for start, end in zip(edges[::2], edges[1::2])]
    return [run_ for run_ in runs if run_[1] >= at_least]


def assert_one_second_between_the_sentences(audio: bytes, rate: int) -> None:
    total = len(audio) / 2 / rate
    runs = silent_runs(audio, rate)
    assert len(runs) == 1, f"silences {runs} in {total:.2f} s of audio"
    start, length = runs[0]
    assert 0.95 <= length <= 1.2, runs  # the voice's own edges may add a few zero samples
    assert 1.0 < start and start + length < total - 0.3, f"silence {runs} is not between the sentences ({total:.2f} s)"


def test_one_shot_request(tts):
    reply = run(synthesize(tts.port, TEXT, name=BUNDLED_PIPER))
    assert_one_second_between_the_sentences(reply.audio, reply.rate)


def test_stream_split_anywhere(tts):
    chunks = [TEXT[i:i + 7] for i in range(0, len(TEXT), 7)]  # the head is released before the first "."
    reply, _ = run(stream(tts.port, chunks, name=BUNDLED_PIPER))
    assert reply.types[-1] == "synthesize-stopped", reply.types
    assert_one_second_between_the_sentences(reply.audio, reply.rate)


def test_no_silence_by_default():
    server = start_tts("--cache-mb", "0")
    try:
        reply = run(synthesize(server.port, TEXT, name=BUNDLED_PIPER))
        assert silent_runs(reply.audio, reply.rate) == []
    finally:
        stop_tts(server)


def test_what_ends_a_sentence():
    assert ends_sentence("It was fast.") and ends_sentence('He said "no!" ') and ends_sentence("終わり。")
    assert not ends_sentence("The quick brown fox") and not ends_sentence("first, second,")
    assert not ends_sentence("I met Dr.")
