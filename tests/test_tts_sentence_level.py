"""One level across a sentence spoken in pieces.

piper-tts scales each sentence to full scale. The service speaks a request's first words
on their own (early first audio) and the clauses of an over-long sentence one by one, so
each piece used to get a gain of its own: a step in loudness inside one sentence. Now a
piece that goes on with a sentence is brought down to the level of its louder pieces
before it, and a piece that starts a sentence is what piper-tts gives for it, byte for byte.

Real Piper (the bundled voice) with its noise off, so every synthesis is a pure function of
its text and the expected bytes can be computed from piper-tts itself.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voice_common.models import package_dir
from wyoming_tts.backends.piper import BUNDLED_PACKAGE, BUNDLED_VOICE, PiperBackend
from wyoming_tts.config import PiperConfig, TtsConfig
from wyoming_tts.engine import Synthesizer, scaled
from wyoming_tts.metrics import TtsMetrics
from wyoming_tts.pipeline import AudioPipeline
from wyoming_tts.text import split_head

SENTENCES = [
    "Suddenly the gardener was reading quietly outside the corner shop.",
    "Recently a courier painted a picture in the upstairs bathroom.",
    "Tonight a musician fixed the radio next to the bookshelf.",
    "Yesterday my cousin dropped a glass near the parking lot.",
    "Perhaps the postman was seen waiting behind the old shed.",
    "Usually the doctor opened every window on the hallway stairs.",
]


@pytest.fixture(scope="module")
def engine():
    backend = PiperBackend(PiperConfig.of(TtsConfig(noise_scale=0.0, noise_w=0.0)), None)
    synth = Synthesizer([backend], TtsMetrics(), cache_bytes=8 << 20, workers=1)
    synth.load()
    yield synth
    synth.shutdown()


@pytest.fixture(scope="module")
def stock():
    """piper-tts itself: (bytes at its own full scale, peak before scaling) of a text."""
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(package_dir(*BUNDLED_PACKAGE) / "data" / f"{BUNDLED_VOICE}.onnx")

    def run(text: str) -> tuple[bytes, float]:
        (normal,) = voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
        (raw,) = voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False))
        return normal.audio_int16_bytes, float(np.abs(raw.audio_float_array).max())

    return run


def _piece(engine: Synthesizer, plan, text: str, continues: bool) -> bytes:
    return engine.synthesize_piece(plan, text, None, continues)[1]


def test_the_rest_of_a_sentence_keeps_the_level_of_its_first_words(engine, stock):
    quieter = louder = 0
    for sentence in SENTENCES:
        head, rest = split_head(sentence)
        (head_pcm, head_peak), (rest_pcm, rest_peak) = stock(head), stock(rest)
        plan = engine.plan(None, None, None, 1.0)
        assert _piece(engine, plan, head, continues=False) == head_pcm  # piper-tts' own bytes
        got = _piece(engine, plan, rest, continues=True)
        if rest_peak < head_peak:  # piper-tts would make the rest louder than the words before it
            quieter += 1
            assert got == scaled(rest_pcm, rest_peak / head_peak) != rest_pcm
        else:  # the rest holds the sentence's peak: its own full scale is the sentence's level
            louder += 1
            assert got == rest_pcm
    assert quieter and louder  # both cases were exercised


def test_a_new_sentence_starts_at_its_own_full_scale(engine, stock):
    plan = engine.plan(None, None, None, 1.0)
    loud_head, rest = split_head(SENTENCES[0])
    _piece(engine, plan, loud_head, continues=False)
    _piece(engine, plan, rest, continues=True)
    assert _piece(engine, plan, SENTENCES[1], continues=False) == stock(SENTENCES[1])[0]


def test_a_cached_piece_is_leveled_like_a_synthesized_one(engine, stock):
    head, rest = split_head(SENTENCES[2])
    expected = None
    for _ in range(2):  # the second time both pieces come from the audio cache
        plan = engine.plan(None, None, None, 1.0)
        _piece(engine, plan, head, continues=False)
        got = _piece(engine, plan, rest, continues=True)
        assert expected is None or got == expected
        expected = got
    assert engine.metrics.cache_hits._value.get() >= 2


def test_the_pipeline_says_which_pieces_go_on_with_a_sentence(engine):
    """A request's first sentence (head + rest), the clauses of an over-long sentence, a
    stream's early head and its remainder, and new sentences."""

    async def pieces() -> list[tuple[str, bool, bool]]:
        async def write(_event) -> None:
            return None

        pipeline = AudioPipeline(engine, engine.plan(None, None, None, 1.0), write, 1024)
        await pipeline.put_sentence(SENTENCES[0])
        long = ", ".join(["and then the kitchen lights went out again"] * 5) + "."
        await pipeline.put_sentence(long)
        await pipeline.put_sentence("Then the first words of a stream")  # released before its end
        await pipeline.put_sentence(" came before the rest.")
        items = []
        while not pipeline._text.empty():
            items.append(pipeline._text.get_nowait())
        return items

    items = asyncio.run(pieces())
    continues = [item[2] for item in items]
    head, rest = split_head(SENTENCES[0])
    assert items[0][0] == head and items[1][0] == rest
    long_pieces = len(items) - 4
    assert long_pieces >= 2  # the long sentence really was cut
    assert continues == [False, True, False] + [True] * (long_pieces - 1) + [False, True]
