"""The streaming decoder's logic, driven directly with the real tiny.en model."""

from __future__ import annotations

import asyncio
import types

import numpy as np
import pytest

from helpers import espeak, normalize_words, silence, word_error_rate
from speech_corpus import chime, room_noise, say, scale
from wyoming_stt.backends import DecodeOptions
from wyoming_stt.backends.faster_whisper import FasterWhisperBackend
from wyoming_stt.engine import Engine
from wyoming_stt.handler import SttMetrics
from wyoming_stt.streaming import EnergyTracker, StreamingDecoder, common_prefix


@pytest.fixture(scope="module")
def engine():
    config = types.SimpleNamespace(
        model="tiny.en", device="cpu", compute_type="int8", cpu_threads=2, workers=1,
        download_dir=None, local_files_only=True, vad=True, no_speech_threshold=0.6, short_context=False,
    )
    backend = FasterWhisperBackend(config)
    backend.load()
    eng = Engine(backend, 1, SttMetrics())
    yield eng
    eng.shutdown()


def pcm_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


OPTIONS = DecodeOptions(language="en", beam_size=5)


async def feed(engine, parts, partials):
    """Stream `parts` like a live microphone; after each part, let early decodes finish
    (however long that takes under load: nothing here depends on timing)."""
    async def on_partial(text):
        partials.append(text)

    tasks = []
    decoder = StreamingDecoder(
        engine, OPTIONS, on_partial=on_partial,
        spawn=lambda coro: tasks.append(asyncio.ensure_future(coro)) or tasks[-1], burst_factor=None,
    )
    for part in parts:
        samples = pcm_to_float(part)
        for i in range(0, samples.size, 1024):
            decoder.add(samples[i:i + 1024])
            await asyncio.sleep(0)
        while any(not task.done() for task in tasks):
            await asyncio.wait([task for task in tasks if not task.done()])
    result = await decoder.finish()
    return decoder, result


def plain(engine, pcm: bytes) -> str:
    """The words the final must have: the plain decode of the audio up to the end of speech
    (the same function the decoder uses, computed from scratch on all the audio)."""
    async def run():
        decoder = StreamingDecoder(engine, OPTIONS, on_partial=None, spawn=asyncio.ensure_future,
                                   burst_factor=None)
        decoder.add(pcm_to_float(pcm))  # one burst: no early decode
        return await decoder.finish(), decoder.speculative_hits

    result, hits = asyncio.run(run())
    assert hits == 0
    return result.text


@pytest.mark.parametrize("tail", ["zeros", "room noise"])
def test_speculative_result_used_when_only_non_speech_follows(engine, tail):
    text = "turn on the kitchen light"
    after = silence(0.5) if tail == "zeros" else room_noise(0.5, dbfs=-55)
    pcm = [espeak(text) + after, after]
    decoder, result = asyncio.run(feed(engine, pcm, []))
    assert decoder.speculative_hits == 1
    assert result.text == plain(engine, b"".join(pcm))  # exactly the plain path's words
    assert word_error_rate(text, result.text) <= 0.2


def test_speculative_result_discarded_when_speech_resumes(engine):
    first, second = "turn on the kitchen light", "and close the garage door"
    decoder, result = asyncio.run(
        feed(engine, [espeak(first) + silence(0.7), espeak(second) + silence(0.1)], [])
    )
    assert decoder.speculative_hits == 0
    assert word_error_rate(f"{first} {second}", result.text) <= 0.25


def test_quiet_command_after_a_loud_chime_is_decoded(engine):
    """A wake-word chime at 0.85 amplitude, then a command at -35 dBFS: the command is the
    transcript, not whatever the chime decoded to."""
    command = say("piper", "Turn off the lights in the kitchen.")
    parts = [chime() + silence(0.6), scale(command.pcm, -35) + silence(0.8)]
    decoder, result = asyncio.run(feed(engine, parts, []))
    assert word_error_rate(command.text, result.text) <= 0.2, result.text
    assert result.text == plain(engine, b"".join(parts))


def test_quiet_continuation_after_a_loud_start_is_kept(engine):
    """A loud command, a 0.5 s pause, and a continuation 28 dB quieter."""
    loud = say("piper", "Add milk to the shopping list.")
    quiet = say("piper", "And also some bread.")
    parts = [scale(loud.pcm, -1) + silence(0.6), scale(quiet.pcm, -29) + silence(0.8)]
    decoder, result = asyncio.run(feed(engine, parts, []))
    assert decoder.speculative_hits == 0  # the early decode of the first part is not the answer
    words = normalize_words(result.text)
    assert "bread" in words, result.text
    assert word_error_rate(f"{loud.text} {quiet.text}", result.text) <= 0.2, result.text


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
