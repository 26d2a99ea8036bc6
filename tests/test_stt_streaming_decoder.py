"""The streaming decoder's logic, driven directly with the real tiny.en model."""

from __future__ import annotations

import asyncio
import types

import numpy as np
import pytest

from helpers import espeak, silence, word_error_rate
from wyoming_stt.backends import DecodeOptions
from wyoming_stt.backends.faster_whisper import FasterWhisperBackend
from wyoming_stt.engine import Engine
from wyoming_stt.handler import SttMetrics
from wyoming_stt.streaming import EnergyTracker, StreamingDecoder, common_prefix


@pytest.fixture(scope="module")
def engine():
    config = types.SimpleNamespace(
        model="tiny.en", device="cpu", compute_type="int8", cpu_threads=2, workers=1,
        download_dir=None, local_files_only=True, vad=True, no_speech_threshold=0.6, short_context=True,
    )
    backend = FasterWhisperBackend(config)
    backend.load()
    eng = Engine(backend, 1, SttMetrics())
    yield eng
    eng.shutdown()


def pcm_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


async def feed(engine, parts, partials):
    async def on_partial(text):
        partials.append(text)

    tasks = []
    decoder = StreamingDecoder(
        engine, DecodeOptions(language="en"), on_partial=on_partial,
        spawn=lambda coro: tasks.append(asyncio.ensure_future(coro)) or tasks[-1], burst_factor=None,
    )
    for part in parts:
        samples = pcm_to_float(part)
        for i in range(0, samples.size, 1024):
            decoder.add(samples[i:i + 1024])
            await asyncio.sleep(0.002)
        # give an early decode time to finish, as a live microphone would
        for task in list(tasks):
            await asyncio.wait({task}, timeout=5)
    result = await decoder.finish()
    return decoder, result


def test_speculative_result_used_when_only_silence_follows(engine):
    text = "turn on the kitchen light"
    decoder, result = asyncio.run(feed(engine, [espeak(text) + silence(0.5), silence(0.5)], []))
    assert decoder.speculative_hits == 1
    assert word_error_rate(text, result.text) <= 0.2


def test_speculative_result_discarded_when_speech_resumes(engine):
    first, second = "turn on the kitchen light", "and close the garage door"
    decoder, result = asyncio.run(
        feed(engine, [espeak(first) + silence(0.5), espeak(second) + silence(0.1)], [])
    )
    assert decoder.speculative_hits == 0
    assert word_error_rate(f"{first} {second}", result.text) <= 0.25


def test_energy_tracker_finds_trailing_silence():
    tracker = EnergyTracker()
    tracker.add(pcm_to_float(silence(0.3)))
    assert not tracker.has_speech()
    tracker.add(pcm_to_float(espeak("hello there")))
    assert tracker.has_speech()
    tracker.add(pcm_to_float(silence(0.6)))
    assert tracker.trailing_silence_s() >= 0.5


def test_local_agreement_ignores_case_and_punctuation():
    assert common_prefix("And so, my".split(), "and so my fellow".split()) == 3
    assert common_prefix(["you."], ["you,"]) == 1
    assert common_prefix(["a", "b"], ["a", "c"]) == 1
