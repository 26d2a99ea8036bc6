"""Runs backend inference in worker threads so the event loop never blocks."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from voice_common.metrics import ServiceMetrics

from .backends import DecodeOptions, SttBackend, Transcription


class Engine:
    """A loaded backend plus a bounded pool of decode threads."""

    def __init__(self, backend: SttBackend, workers: int, metrics: ServiceMetrics) -> None:
        self.backend = backend
        self.workers = max(1, workers)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="stt-decode")
        self._metrics = metrics
        self._running = 0

    def idle(self) -> bool:
        """True when a decode could start at once (used to keep partials from stealing CPU)."""
        return self._running < self.workers

    async def transcribe(self, audio: np.ndarray, options: DecodeOptions) -> Transcription:
        loop = asyncio.get_running_loop()
        self._running += 1
        try:
            return await loop.run_in_executor(self._executor, self._run, audio, options)
        finally:
            self._running -= 1

    async def speech_probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample window of `audio` (off the event loop, outside
        the decode pool, so a busy pool never delays the end-of-speech check)."""
        return await asyncio.to_thread(self.backend.speech_probabilities, audio)

    def _run(self, audio: np.ndarray, options: DecodeOptions) -> Transcription:
        start = time.perf_counter()
        result = self.backend.transcribe(audio, options)
        self._metrics.decode_seconds.labels(self.backend.name).observe(time.perf_counter() - start)
        return result

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
