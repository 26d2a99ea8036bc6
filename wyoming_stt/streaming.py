"""Decoding while audio still arrives: partial transcripts and a speculative final.

Home Assistant sends `audio-stop` only after ~0.7 s of trailing silence. As soon
as the stream goes quiet after speech we decode what we have; at `audio-stop`,
if nothing but silence followed, that result is the answer and the stop costs
no decode at all. If speech resumed, the speculative result is discarded and the
whole utterance is decoded. Partial hypotheses while the user speaks are turned
into `transcript-chunk` deltas by local agreement (words two decodes agree on).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from voice_common.audio import SPEECH_RATE

from .backends import DecodeOptions, Transcription
from .endpoint import SpeechEnd
from .engine import Engine

_LOGGER = logging.getLogger(__name__)

RATE = SPEECH_RATE
FRAME = 480  # 30 ms energy frames


#: Frame RMS below this is never voiced (about -50 dBFS): digital silence and quiet rooms.
MIN_VOICED_RMS = 3e-3
#: A frame is voiced when it is this many times louder than the noise floor (+9.5 dB).
FLOOR_FACTOR = 3.0


class EnergyTracker:
    """Which 30 ms frames are voiced, relative to the noise floor so far.

    Never relative to the peak: a loud chime before a quiet command, or a quiet continuation
    after a loud start, is speech all the same. This only schedules early decodes (it is
    cheap enough for every chunk); what the final covers is the voice-activity model's call
    (endpoint.py).
    """

    def __init__(self) -> None:
        self._rms: list[float] = []
        self._pending = np.zeros(0, dtype=np.float32)
        self._voiced = np.zeros(0, dtype=bool)

    def add(self, samples: np.ndarray) -> None:
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = (data.size // FRAME) * FRAME
        if whole:
            frames = data[:whole].reshape(-1, FRAME)
            self._rms.extend(np.sqrt(np.mean(frames * frames, axis=1)).tolist())
            rms = np.asarray(self._rms)
            self._voiced = rms > self.threshold(rms)  # once per chunk, not once per question
        self._pending = data[whole:].copy()

    @staticmethod
    def threshold(rms: np.ndarray) -> float:
        floor = float(np.percentile(rms, 10))
        return max(FLOOR_FACTOR * floor, MIN_VOICED_RMS)

    def has_speech(self) -> bool:
        return bool(self._voiced.sum() >= 3)  # >= 90 ms of voiced frames

    def trailing_silence_s(self) -> float:
        voiced = self._voiced
        if not voiced.any():
            return len(voiced) * FRAME / RATE
        return (len(voiced) - 1 - int(np.flatnonzero(voiced)[-1])) * FRAME / RATE


def _norm(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum() or ch == "'")


def common_prefix(a: list[str], b: list[str]) -> int:
    """Words two hypotheses share, ignoring case and punctuation ("you." == "you,")."""
    n = 0
    for x, y in zip(a, b, strict=False):  # up to the shorter one
        if _norm(x) != _norm(y):
            break
        n += 1
    return n


class StreamingDecoder:
    """One utterance: feed 16 kHz samples with `add`, get the final with `finish`.

    With `trim` (the service's VAD on), the final is `decode(audio[:speech_end])` (see
    endpoint.py), and a decode made early on exactly that audio is reused. Without it the
    final decodes all the audio and early decodes only feed partials.
    """

    def __init__(
        self,
        engine: Engine,
        options: DecodeOptions,
        *,
        on_partial: Callable[[str], Awaitable[None]] | None,
        spawn: Callable[[Awaitable], asyncio.Task],
        partial_interval: float = 1.0,
        speculate_after: float = 0.3,
        burst_factor: float | None = 2.0,
        trim: bool = True,
    ) -> None:
        self._engine = engine
        self._options = options
        self._partial_options = dataclasses.replace(options, thorough=True)
        self._on_partial = on_partial
        self._spawn = spawn
        self._partial_interval = int(partial_interval * RATE)
        self._speculate_after = speculate_after
        self._burst_factor = burst_factor
        self._trim = trim
        self._chunks: list[np.ndarray] = []
        self.samples = 0
        self._energy = EnergyTracker()
        self._speech_end = SpeechEnd(engine.vad_stream())
        self._partial: asyncio.Task | None = None
        self._speculative: asyncio.Task | None = None
        #: Early decodes of audio[:end] with the final's options, by `end`.
        self._early: dict[int, asyncio.Task] = {}
        self._last_words: list[str] = []
        self._emitted: list[str] = []
        self._last_decode_at = 0
        self._finished = False
        self.speculative_hits = 0
        self._t0: float | None = None

    def audio(self, end: int | None = None) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        data = self._chunks[0] if self._chunks else np.zeros(0, dtype=np.float32)
        return data if end is None else data[:end]

    def add(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._chunks.append(samples)
        self.samples += samples.size
        self._energy.add(samples)
        if not self._energy.has_speech() or not self._engine.idle():
            return
        if self._burst_factor and self.samples / RATE > self._burst_factor * (now - self._t0) + 0.5:
            return  # audio arrives in a burst (a file, not a live mic): early decodes would be wasted
        if self._energy.trailing_silence_s() >= self._speculate_after:
            # Speculative: it may be the answer. It does not wait for a partial decode in
            # flight (a free worker is enough), or that partial would delay the answer.
            if self._trim and self._speculative is None:
                self._speculative = self._spawn(self._speculate())
        elif (self._on_partial is not None and self._partial is None
              and self.samples - self._last_decode_at >= self._partial_interval):
            self._last_decode_at = self.samples
            self._partial = self._spawn(self._decode_partial(self.samples))

    async def _speculate(self) -> None:
        """Decode audio[:speech_end] as soon as the voice-activity model says speech ended."""
        try:
            await self._speech_end.update(self.audio())
            total = self.samples
            if self._finished or not self._speech_end.complete(total):
                return
            end = self._speech_end.end(total)
            if end not in self._early:
                self._early[end] = self._spawn(self._engine.transcribe(self.audio(end), self._options))
                with contextlib.suppress(Exception):  # finish() decodes again if it failed
                    result = await asyncio.shield(self._early[end])
                    await self._emit_stable(result.text)
        finally:
            self._speculative = None

    async def _decode_partial(self, end: int) -> None:
        """A partial hypothesis of all audio so far (words two of them agree on go out)."""
        try:
            result = await self._engine.transcribe(self.audio(end), self._partial_options)
            await self._emit_stable(result.text)
        finally:
            self._partial = None

    async def _emit_stable(self, text: str) -> None:
        words = text.split()
        # The last word of a hypothesis is the least stable (and often carries a
        # sentence-final period that the next decode drops): never emit it.
        stable = min(common_prefix(words, self._last_words), len(words) - 1)
        self._last_words = words
        if self._finished or self._on_partial is None or stable <= len(self._emitted):
            return
        if common_prefix(words[:stable], self._emitted) != len(self._emitted):
            return  # the model changed its mind about emitted words; the final will say
        new = words[len(self._emitted):stable]
        self._emitted.extend(new)
        await self._on_partial(" ".join(new) if len(self._emitted) == len(new) else " " + " ".join(new))

    async def finish(self) -> Transcription:
        """The final transcript: `decode(audio[:speech_end])`, from an early decode of
        exactly that audio when one was made (only non-speech followed it)."""
        self._finished = True
        audio = self.audio()
        if not self._trim:
            return await self._engine.transcribe(audio, self._options)
        await self._speech_end.update(audio)
        end = self._speech_end.end(audio.size)
        if end == 0:  # the voice-activity model heard no speech at all
            return Transcription(text="", language=self._options.language)
        early = self._early.get(end)
        if early is not None:
            try:
                result = await asyncio.shield(early)
            except Exception:  # decode it again below
                _LOGGER.debug("early decode failed; decoding again", exc_info=True)
            else:
                self.speculative_hits += 1
                return result
        return await self._engine.transcribe(audio[:end], self._options)

    def final_delta(self, text: str) -> str | None:
        """The rest of the final text after the emitted partial words, if consistent."""
        words = text.split()
        if common_prefix(words, self._emitted) != len(self._emitted) or len(words) == len(self._emitted):
            return None
        rest = " ".join(words[len(self._emitted):])
        return rest if not self._emitted else " " + rest
