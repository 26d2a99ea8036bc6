"""Runs backend inference in worker threads so the event loop never blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .backends import DecodeOptions, SttBackend, Transcription
from .metrics import SttMetrics


class Engine:
    """A loaded backend plus a bounded pool of decode threads."""

    def __init__(self, backend: SttBackend, workers: int, metrics: SttMetrics) -> None:
        self.backend = backend
        self.workers = max(1, workers)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="stt-decode")
        self._metrics = metrics
        self._running = 0

    @property
    def backend_name(self) -> str:
        """The backend's name (the `backend` label of the metrics)."""
        return self.backend.name

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

    def vad_stream(self) -> Callable[[np.ndarray], Awaitable[np.ndarray]]:
        """A voice-activity scorer for one stream, run off the event loop and outside the
        decode pool (a busy pool never delays the end-of-speech check)."""
        stream = self.backend.vad_stream()

        async def score(windows: np.ndarray) -> np.ndarray:
            return await asyncio.to_thread(stream.score, windows)

        return score

    def _run(self, audio: np.ndarray, options: DecodeOptions) -> Transcription:
        start = time.perf_counter()
        result = self.backend.transcribe(audio, options)
        self._metrics.decode_seconds.labels(self.backend.name).observe(time.perf_counter() - start)
        return result

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
