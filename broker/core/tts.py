"""One text-to-speech session: a whole text or streamed text -> Wyoming synthesis -> audio results.

Streamed text goes to the service as synthesize-start/chunk/stop when it supports
streaming (audio starts before the text ends), else as one `synthesize` at the
end. Until the first audio is sent a failed service is replaced by the next. A request
for a voice goes first to the services that list it (a cloned voice lives only on some).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from voice_common.errors import MqttCode

from .errors import SessionError
from .payloads import Voice
from .results import Audio, AudioFormat, Done, Sink
from .services import Service
from .session import READER_DONE, Deps, Session, backend_error
from .wyoming_client import BackendBusy, ServiceClient


class TtsSession(Session):
    kind = "tts"
    backend = "tts"

    def __init__(self, site: str | None, rid: str, sink: Sink, deps: Deps, voice: Voice, text: str | None,
                 deadline: float | None = None) -> None:
        super().__init__(site, rid, sink, deps)
        self.voice = voice
        #: time.monotonic() after which the request is stale (MQTT v5 Message Expiry): no
        #: audio is started after it.
        self.deadline = deadline
        self.parts: list[str] = [] if text is None else [text]
        self.chars = 0 if text is None else len(text)
        self.ended = text is not None  # all text is in `parts`
        self.closed = self.ended  # no more input accepted
        self.audio_started = False
        self._format: tuple[int, int, int] | None = None
        self._chunks = self._bytes = 0
        self._first_audio: float | None = None

    def candidates(self) -> list[Service]:
        """The pool's order, with the services that list the requested voice first: a voice
        profile (cloned voice) lives only on the services that keep profiles."""
        services = super().candidates()
        name = self.voice.name
        return sorted(services, key=lambda s: name is not None and name not in s.names.get("tts", []))

    # Called by a front: validate and queue, never block.
    def add_text(self, text: str) -> None:
        if self.closed:
            return
        self.chars += len(text)
        if self.chars > self.deps.config.max_text_chars:
            self.closed = True
            self.fail(SessionError(
                f"text longer than {self.deps.config.max_text_chars} characters", MqttCode.TOO_LARGE))
        elif text:
            self.inbox.put_nowait(text)

    def end(self) -> None:
        if not self.closed:
            self.closed = True
            self.inbox.put_nowait(None)

    def cancel(self) -> None:
        self.closed = True
        super().cancel()

    async def run(self) -> None:
        await self.failover(self._attempt, lambda: not self.audio_started)
        if not self.audio_started:
            raise SessionError("the TTS service returned no audio", MqttCode.BACKEND_ERROR)
        rate, width, channels = self._format or (0, 0, 0)
        seconds = self._bytes / max(1, rate * width * channels)
        latency = (self._first_audio or self.opened) - self.opened
        metrics = self.deps.metrics
        metrics.requests.labels("tts").inc()
        metrics.audio_seconds.labels("tts").inc(seconds)
        metrics.latency.labels("tts").observe(latency)
        self.release()  # the site is free before the requester learns the result
        await self.emit(Done(self._chunks, self._bytes, round(seconds * 1000), round(latency * 1000)))

    async def _attempt(self, service: Service) -> None:
        config = self.deps.config
        async with ServiceClient(service.uri, connect_timeout=config.connect_timeout,
                                 read_timeout=config.backend_timeout) as client:
            if not service.streaming.get("tts") or self.ended:
                while not self.ended:  # collect the whole text first
                    self._take(await self.next_item())
                self._check_expiry()
                await client.write_event(self.voice.apply(Synthesize("".join(self.parts)).event()))
                await self._read(client, streaming=False)
                return
            await client.write_event(self.voice.apply(SynthesizeStart().event()))
            for part in self.parts:
                await client.write_event(SynthesizeChunk(part).event())
            reader = asyncio.ensure_future(self._read(client, streaming=True))
            try:
                while not self.ended:
                    item = await self.next_item_or(reader)
                    if item is READER_DONE:
                        reader.result()  # raises the service's failure
                        raise SessionError("the TTS service ended the stream early", MqttCode.BACKEND_ERROR)
                    text = self._take(item)
                    if text:
                        await client.write_event(SynthesizeChunk(text).event())
                await client.write_event(self.voice.apply(Synthesize("".join(self.parts)).event()))
                await client.write_event(SynthesizeStop().event())
                await reader
            finally:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader

    def _take(self, item: str | None) -> str | None:
        if item is None:
            self.ended = True
        else:
            self.parts.append(item)
        return item

    def _check_expiry(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise SessionError("the request's Message Expiry passed before audio was ready", MqttCode.EXPIRED)

    async def _read(self, client: ServiceClient, streaming: bool) -> None:
        while True:
            event = await client.read_event()
            if AudioStart.is_type(event.type) or AudioChunk.is_type(event.type):
                await self._audio(event)
            elif AudioStop.is_type(event.type) and not streaming:
                return
            elif SynthesizeStopped.is_type(event.type):
                return
            elif Error.is_type(event.type):
                err = Error.from_event(event)
                if err.code == "busy" and not self.audio_started:
                    raise BackendBusy(err.text)
                raise backend_error(err.text, err.code)

    async def _audio(self, event: Event) -> None:
        try:
            rate, width, channels = (int(event.data[k]) for k in ("rate", "width", "channels"))
        except (KeyError, TypeError, ValueError):
            raise SessionError("audio event without a format", MqttCode.INVALID_FORMAT) from None
        fmt = (rate, width, channels)
        if not self.audio_started:
            self._check_expiry()
            self.audio_started = True
            self._format = fmt
            self._first_audio = time.monotonic()
            await self.emit(AudioFormat(rate, width, channels, self.voice.name))
        elif fmt != self._format:
            raise SessionError("the service changed the audio format mid-stream", MqttCode.INVALID_FORMAT)
        if not AudioChunk.is_type(event.type):
            return
        audio = AudioChunk.from_event(event).audio or b""
        frame = width * channels
        step = max(frame, self.deps.config.audio_chunk_bytes // frame * frame)
        for start in range(0, len(audio), step):
            piece = audio[start:start + step]
            self._chunks += 1
            self._bytes += len(piece)
            await self.emit(Audio(piece))
