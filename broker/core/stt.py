"""One speech-to-text session: start/audio/stop from a front -> Wyoming transcribe -> results.

The audio of the session is kept (it is capped anyway), so when the service dies
mid-utterance the session replays it to the next one instead of failing.

Audio messages may have any byte count: message boundaries are transport framing
(Home Assistant, for one, forwards request bodies in pieces of odd lengths), so a
partial frame is carried over to the next message and the service only ever gets
whole frames. Only a stream whose total is not whole frames is refused, at `stop`.

After `stop` the service may take long for a long utterance (decoding on a CPU), so
the wait for the transcript grows with the audio's length (`result_timeout`); a service
that only takes too long gets `timeout` and a health re-check, never a failure mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error

from voice_common.errors import MqttCode

from .errors import SessionError
from .payloads import Stop, SttRequest
from .results import Final, Partial, Sink
from .services import Service
from .session import READER_DONE, AudioInput, Deps, backend_error
from .wyoming_client import BackendBusy, ServiceClient

_LOGGER = logging.getLogger(__name__)

#: A `stop` may announce at most this share of chunks lost before the result is an error.
MAX_LOST_SHARE = 0.1


class SttSession(AudioInput):
    kind = "asr"
    backend = "stt"

    def __init__(self, site: str | None, sid: str, sink: Sink, deps: Deps, request: SttRequest) -> None:
        super().__init__(site, sid, sink, deps)
        self.request = request
        self.frame = request.width * request.channels
        self.bytes_per_second = request.rate * self.frame
        self.accept_audio(int(deps.config.max_audio_seconds * self.bytes_per_second),
                          f"audio longer than {deps.config.max_audio_seconds:g} s")
        self._audio: list[bytes] = []  # what was sent to the service, for failover
        self._partial = b""  # bytes of a frame split between two messages, not yet sent (`_frames`)
        self._stop: Stop | None = None
        self._seq = 0

    async def run(self) -> None:
        transcript = await self.failover(self._attempt, lambda: True)
        self.closed = True  # a service that ends the utterance itself answers before `stop`
        seconds = self.received_bytes / self.bytes_per_second
        latency = time.monotonic() - (self._stop.at if self._stop else time.monotonic())
        metrics = self.deps.metrics
        metrics.requests.labels("stt").inc()
        metrics.audio_seconds.labels("stt").inc(seconds)
        metrics.latency.labels("stt").observe(latency)
        final = Final(transcript.text, transcript.language or self.request.language,
                      round(seconds * 1000), round(latency * 1000), self._lost_chunks())
        _LOGGER.debug("site %s session %s transcript: %s", self.site, self.ident, transcript.text)
        self.release()  # the site is free before the requester learns the result
        await self.emit(final)

    def _lost_chunks(self) -> int:
        stop = self._stop
        return max(0, (stop.chunks or 0) - self.received_chunks) if stop else 0

    def _check_loss(self, stop: Stop) -> None:
        shares = []
        if stop.chunks:
            shares.append((stop.chunks - self.received_chunks) / stop.chunks)
        if stop.nbytes:
            shares.append((stop.nbytes - self.received_bytes) / stop.nbytes)
        lost = max(shares, default=0.0)
        if lost > MAX_LOST_SHARE:
            raise SessionError(
                f"{stop.chunks} chunks / {stop.nbytes} bytes announced, "
                f"{self.received_chunks} / {self.received_bytes} received",
                MqttCode.AUDIO_LOST,
            )

    def _frames(self, chunk: bytes) -> bytes:
        """The whole frames of the partial frame carried over plus `chunk`; keeps the rest."""
        data = self._partial + chunk
        cut = len(data) - len(data) % self.frame
        self._partial = data[cut:]
        return data[:cut]

    def _check_whole(self) -> None:
        if self._partial:
            raise SessionError(
                f"{self.received_bytes} bytes of audio are not a whole number of frames "
                f"(width x channels = {self.frame} bytes)",
                MqttCode.INVALID_FORMAT,
            )

    def result_timeout(self) -> float:
        """Seconds the service may take for the transcript after `stop`.

        `--backend-timeout` plus `--stt-timeout-factor` x the audio's seconds, at most
        `--stt-timeout-max`: a fixed bound would fail long utterances on slow CPUs.
        """
        config = self.deps.config
        seconds = self.received_bytes / self.bytes_per_second
        return min(config.stt_timeout_max, config.backend_timeout + config.stt_timeout_factor * seconds)

    async def _transcript(self, reader: asyncio.Future, service: Service) -> Transcript:
        """Wait for the reader's transcript, at most `result_timeout()` s.

        A service that closes or breaks the connection fails over (the reader raises
        ServiceFailure); one that only takes too long ends the session with `timeout` and
        is re-checked with `describe`, which marks it down only if it does not answer.
        """
        timeout = self.result_timeout()
        done, _ = await asyncio.wait({reader}, timeout=timeout)
        if not done:
            self.deps.pool.recheck(service)
            raise SessionError(
                f"the speech-to-text service sent no transcript within {timeout:.1f} s after stop "
                f"({self.received_bytes / self.bytes_per_second:.1f} s of audio)",
                MqttCode.TIMEOUT,
            )
        return reader.result()

    def _chunk_event(self, audio: bytes):
        req = self.request
        return AudioChunk(rate=req.rate, width=req.width, channels=req.channels, audio=audio).event()

    async def _attempt(self, service: Service) -> Transcript:
        config = self.deps.config
        req = self.request
        async with ServiceClient(service.uri, connect_timeout=config.connect_timeout,
                                 read_timeout=config.backend_timeout) as client:
            await client.write_event(Transcribe(name=req.model, language=req.language).event())
            await client.write_event(AudioStart(rate=req.rate, width=req.width, channels=req.channels).event())
            for audio in self._audio:
                await client.write_event(self._chunk_event(audio))
            reader = asyncio.ensure_future(self._read(client))
            try:
                while self._stop is None:
                    item = await self.next_item_or(reader)
                    if item is READER_DONE:
                        return reader.result()  # the service answered (or failed) early
                    if isinstance(item, Stop):
                        self._check_loss(item)
                        self._check_whole()
                        self._stop = item
                    elif audio := self._frames(item):
                        self._audio.append(audio)
                        await client.write_event(self._chunk_event(audio))
                await client.write_event(AudioStop().event())
                return await self._transcript(reader, service)
            finally:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader

    async def _read(self, client: ServiceClient) -> Transcript:
        """Partials until the transcript. Unbounded in time: the service owes nothing while
        audio flows (`next_item` bounds the device, `_transcript` the wait after stop)."""
        text = ""
        while True:
            event = await client.read_event(bounded=False)
            if TranscriptChunk.is_type(event.type):
                if self.request.partials:
                    text += TranscriptChunk.from_event(event).text
                    self._seq += 1
                    await self.emit(Partial(text.strip(), self._seq))
            elif Transcript.is_type(event.type):
                return Transcript.from_event(event)
            elif Error.is_type(event.type):
                err = Error.from_event(event)
                if err.code == "busy":
                    raise BackendBusy(err.text)
                raise backend_error(err.text, err.code)
