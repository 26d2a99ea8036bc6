"""Where an utterance's speech ends, by the voice-activity model, for exact early finals.

The decode every utterance gets is `decode(audio[:speech_end])`: the audio up to the last
window the voice-activity model calls speech, plus `PAD` (what faster-whisper's own VAD
filter keeps after speech), or all of it when the pad runs past the end. Trailing
non-speech (the silence a client sends before `audio-stop`, room noise) is not decoded.

That definition is what makes the speculative final exact rather than a guess: a decode
started during the trailing silence covers `audio[:speech_end]` as known then. At
`audio-stop` the end is computed again over all the audio; only if it is the very same
sample is the early decode reused, and then its input was byte for byte the input of the
decode it replaces. Any speech after it, however quiet (a command after a loud chime, a
soft continuation), moves the end, and the whole utterance is decoded again.

Speech probabilities are computed once per 32 ms window as audio arrives, with the model's
state carried from window to window, so they are the same however the stream was cut into
chunks (the same transcript for the same audio), and the end found at `audio-stop` agrees
with the one found earlier whenever nothing but non-speech came in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from voice_common.audio import SPEECH_RATE

RATE = SPEECH_RATE
WINDOW = 512  # samples per voice-activity window (32 ms)
#: A window at or above this speech probability is speech (faster-whisper's own VAD uses
#: 0.5 to start speech and 0.35 to end it; the lower value errs towards keeping words).
THRESHOLD = 0.35
#: Audio kept after the last speech window (faster-whisper's VAD filter pads 400 ms too).
PAD = int(0.4 * RATE)

#: Scores a stream's next (n, 512) windows; see backends.base.VadStream.
Scorer = Callable[[np.ndarray], Awaitable[np.ndarray]]


class SpeechEnd:
    """Incremental speech probabilities of one stream and the end of speech they imply."""

    def __init__(self, score: Scorer) -> None:
        self._score = score
        self._probs = np.zeros(0, dtype=np.float32)
        self._lock = asyncio.Lock()

    async def update(self, audio: np.ndarray) -> None:
        """Score the whole windows of `audio` (the stream so far) not scored yet."""
        async with self._lock:
            done = self._probs.size
            whole = audio.size // WINDOW
            if whole <= done:
                return
            windows = audio[done * WINDOW:whole * WINDOW].reshape(-1, WINDOW)
            probs = await self._score(windows)
            self._probs = np.concatenate([self._probs, np.asarray(probs, dtype=np.float32)])

    def end(self, total: int) -> int:
        """The sample where the decoded audio ends, for a stream of `total` samples so far:
        0 when no window is speech, `total` when the pad after the last speech runs past it."""
        voiced = np.flatnonzero(self._probs >= THRESHOLD)
        if voiced.size == 0:
            return 0
        return min(total, (int(voiced[-1]) + 1) * WINDOW + PAD)

    def complete(self, total: int) -> bool:
        """True when speech was heard and has ended with a full pad within `total` samples."""
        end = self.end(total)
        return 0 < end < total
