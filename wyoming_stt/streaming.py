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
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np

from .backends import DecodeOptions, Transcription
from .engine import Engine

_LOGGER = logging.getLogger(__name__)

RATE = 16000
FRAME = 480  # 30 ms energy frames


class EnergyTracker:
    """Which 30 ms frames are voiced, relative to the noise floor and peak so far."""

    def __init__(self) -> None:
        self._rms: list[float] = []
        self._pending = np.zeros(0, dtype=np.float32)

    def add(self, samples: np.ndarray) -> None:
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = (data.size // FRAME) * FRAME
        if whole:
            frames = data[:whole].reshape(-1, FRAME)
            self._rms.extend(np.sqrt(np.mean(frames * frames, axis=1)).tolist())
        self._pending = data[whole:].copy()

    def threshold(self) -> float:
        if not self._rms:
            return float("inf")
        rms = np.asarray(self._rms)
        floor = float(np.percentile(rms, 10))
        peak = float(rms.max())
        return max(3.0 * floor, 0.05 * peak, 3e-3)

    def voiced(self, start_sample: int = 0, end_sample: int | None = None) -> np.ndarray:
        rms = np.asarray(self._rms)
        first = start_sample // FRAME
        last = len(rms) if end_sample is None else -(-end_sample // FRAME)
        return rms[first:last] > self.threshold()

    def has_speech(self) -> bool:
        return bool(self.voiced().sum() >= 3)  # >= 90 ms of voiced frames

    def trailing_silence_s(self) -> float:
        voiced = self.voiced()
        if not voiced.any():
            return len(voiced) * FRAME / RATE
        return (len(voiced) - 1 - int(np.flatnonzero(voiced)[-1])) * FRAME / RATE

    def silent_after(self, sample: int) -> bool:
        return not self.voiced(start_sample=sample).any()


@dataclass
class Hypothesis:
    samples: int  # audio length the decode covered
    result: Transcription


@dataclass
class Inflight:
    samples: int  # audio length the decode covers
    task: asyncio.Task


def _norm(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum() or ch == "'")


def common_prefix(a: list[str], b: list[str]) -> int:
    """Words two hypotheses share, ignoring case and punctuation ("you." == "you,")."""
    n = 0
    for x, y in zip(a, b):
        if _norm(x) != _norm(y):
            break
        n += 1
    return n


class StreamingDecoder:
    """One utterance: feed 16 kHz samples with `add`, get the final with `finish`."""

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
    ) -> None:
        self._engine = engine
        self._options = options
        self._partial_options = dataclasses.replace(options, thorough=True)
        self._on_partial = on_partial
        self._spawn = spawn
        self._partial_interval = int(partial_interval * RATE)
        self._speculate_after = speculate_after
        self._burst_factor = burst_factor
        self._chunks: list[np.ndarray] = []
        self.samples = 0
        self._energy = EnergyTracker()
        self._partial: Inflight | None = None
        self._speculative: Inflight | None = None
        self._best: Hypothesis | None = None
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
            # Speculative: fast, it may be the answer. It does not wait for a partial decode
            # in flight (a free worker is enough), or that partial would delay the answer.
            if self._speculative is None and (self._best is None or self._best.samples < self._speech_end()):
                self._speculative = self._start_decode(self._options)
        elif (self._on_partial is not None and self._partial is None
              and self.samples - self._last_decode_at >= self._partial_interval):
            self._last_decode_at = self.samples
            self._partial = self._start_decode(self._partial_options)  # words committed early: accurate

    def _speech_end(self) -> int:
        voiced = self._energy.voiced()
        if not voiced.any():
            return 0
        return (int(np.flatnonzero(voiced)[-1]) + 1) * FRAME

    def _start_decode(self, options: DecodeOptions) -> Inflight:
        end = self.samples
        return Inflight(end, self._spawn(self._decode(end, options)))

    async def _decode(self, end: int, options: DecodeOptions) -> Hypothesis:
        try:
            result = await self._engine.transcribe(self.audio(end), options)
            hyp = Hypothesis(end, result)
            if self._best is None or end >= self._best.samples:
                self._best = hyp
            await self._emit_stable(result.text)
            return hyp
        finally:
            for name in ("_partial", "_speculative"):
                inflight = getattr(self, name)
                if inflight is not None and inflight.task is asyncio.current_task():
                    setattr(self, name, None)

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
        """The final transcript; reuses the speculative decode when only silence followed."""
        for inflight in (self._speculative, self._partial):
            if inflight is not None and self._energy.silent_after(inflight.samples):
                try:
                    await asyncio.shield(inflight.task)
                except Exception:  # noqa: BLE001 - fall through to a full decode
                    pass
                break
        self._finished = True
        best = self._best
        if best is not None and self._energy.silent_after(best.samples):
            self.speculative_hits += 1
            return best.result
        return await self._engine.transcribe(self.audio(), self._options)

    def final_delta(self, text: str) -> str | None:
        """The rest of the final text after the emitted partial words, if consistent."""
        words = text.split()
        if common_prefix(words, self._emitted) != len(self._emitted) or len(words) == len(self._emitted):
            return None
        rest = " ".join(words[len(self._emitted):])
        return rest if not self._emitted else " " + rest
