"""Text pieces in, Wyoming audio events out: synthesize piece n+1 while piece n is sent.

Synthesis runs on the engine's fair worker pool (piece number = priority);
small queues bound what is held at once (a few pieces of text, the audio of the
piece being synthesized), so memory stays flat however long the text. Audio is
sent as the backend yields it (a streaming backend's first frames go out while
it still works on the piece). The first piece
is cut after a few words (`split_head`, where the backend gains from it). One
`audio-start` opens the audio with the format of the first piece; the engine
keeps later pieces in that format.

`sentence_silence` seconds of silence go between sentences, once per boundary and
none after the last, as wyoming-piper's --sentence-silence does. The silence is
put before the first piece of each sentence after the first, so it needs no
look-ahead in a stream and a sentence cut into pieces (its head, its clauses)
still gets exactly one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from functools import partial

from wyoming.audio import AudioChunk, AudioStart
from wyoming.event import Event

from voice_common.protocol import ClientGone

from .engine import Plan, Synthesizer
from .text import bounded_pieces, ends_sentence, is_speakable, split_head

#: Pieces of text waiting for synthesis (the reader blocks beyond this: backpressure).
TEXT_QUEUE = 8


class AudioPipeline:
    def __init__(
        self,
        engine: Synthesizer,
        plan: Plan,
        write: Callable[[Event], Awaitable[None]],
        samples_per_chunk: int,
        alive: Callable[[], bool] = lambda: True,
        sentence_silence: float = 0.0,
    ) -> None:
        self._engine = engine
        self._plan = plan
        self._write = write
        #: False once the client is gone: no further piece is started for it.
        self._alive = alive
        self._chunk_bytes = max(1, samples_per_chunk) * 2
        self._sentence_silence = max(0.0, sentence_silence)
        #: True once the text so far ends a sentence: the next piece starts a new one.
        self._after_sentence_end = False
        #: (piece, starts a sentence after another, goes on with the sentence of the piece
        #: before it) / (backend, pcm, the first flag)
        self._text: asyncio.Queue[tuple[str, bool, bool] | None] = asyncio.Queue(TEXT_QUEUE)
        self._audio: asyncio.Queue[tuple[str, bytes, bool] | BaseException | None] = asyncio.Queue(1)
        self.audio_started = False
        self.first_text_at: float | None = None

    async def put_sentence(self, sentence: str) -> None:
        """Queue a sentence (cut into bounded pieces); waits while the queue is full.

        What a stream releases early (a head, a clause of an over-long sentence) comes
        here too: only text after a real sentence end is preceded by the silence.
        """
        new_sentence = self._after_sentence_end
        # the first piece of a request starts a sentence; so does one after a sentence end
        continues = not (self._after_sentence_end or self.first_text_at is None)
        self._after_sentence_end = ends_sentence(sentence)
        for piece in bounded_pieces(sentence):
            if not is_speakable(piece):
                continue
            if self.first_text_at is None:
                self.first_text_at = time.perf_counter()
                for number, part in enumerate(split_head(piece) if self._plan.short_first_piece else [piece]):
                    await self._text.put((part, False, number > 0))
            else:
                await self._text.put((piece, new_sentence, continues))
            new_sentence = False
            continues = True

    async def end(self) -> None:
        """No more text: the pipeline finishes once everything queued is sent."""
        await self._text.put(None)

    async def run(self) -> None:
        """Send audio for every queued piece until `end`; raises what synthesis raised."""
        producer = asyncio.ensure_future(self._produce())
        try:
            while (item := await self._audio.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                await self._send(*item)
        finally:
            self._plan.cancelled = True  # done, failed or abandoned: a running backend stops
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer

    async def _produce(self) -> None:
        number = 0
        loop = asyncio.get_running_loop()
        try:
            while (item := await self._text.get()) is not None:
                if not self._alive():
                    raise ClientGone("client left; synthesis stopped")
                piece, new_sentence, continues = item
                # The worker hands audio on as the backend yields it; the piece's parts are
                # bounded by the piece (at most 140 characters), so this queue needs no bound.
                parts: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()

                def emit(backend: str, pcm: bytes, parts=parts) -> None:
                    _hand_over(loop, parts, (backend, pcm))

                job = self._engine.executor.submit(
                    number, self._engine.synthesize_piece, self._plan, piece, emit, continues)
                job.add_done_callback(partial(_end_parts, loop, parts))
                number += 1
                while (part := await parts.get()) is not None:
                    await self._audio.put((part[0], part[1], new_sentence))
                    new_sentence = False
                await asyncio.wrap_future(job)  # raises what synthesis raised
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - handed to the sender, which raises it
            await self._audio.put(err)
            return
        await self._audio.put(None)

    async def _send(self, backend: str, pcm: bytes, new_sentence: bool) -> None:
        rate = self._plan.native_rate
        if new_sentence and self.audio_started and self._sentence_silence:
            pcm = bytes(int(self._sentence_silence * rate) * 2) + pcm  # whole 16-bit samples
        if not self.audio_started:
            self.audio_started = True
            await self._write(AudioStart(rate=rate, width=2, channels=1).event())
            if self.first_text_at is not None:
                latency = time.perf_counter() - self.first_text_at
                self._engine.metrics.latency.labels(backend).observe(latency)
        for start in range(0, len(pcm), self._chunk_bytes):
            chunk = pcm[start:start + self._chunk_bytes]
            await self._write(AudioChunk(rate=rate, width=2, channels=1, audio=chunk).event())


def _end_parts(loop: asyncio.AbstractEventLoop, parts: asyncio.Queue, _job: object) -> None:
    """The piece's job is done (from the worker thread): no more parts follow."""
    _hand_over(loop, parts, None)


def _hand_over(loop: asyncio.AbstractEventLoop, parts: asyncio.Queue, item: object) -> None:
    """From a worker thread into the request's queue; after shutdown (loop closed) nobody listens."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(parts.put_nowait, item)
