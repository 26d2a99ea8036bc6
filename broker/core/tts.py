"""One text-to-speech session: `say` or streamed `text` -> Wyoming synthesis -> audio results.

Streamed text goes to the service as synthesize-start/chunk/stop when it supports
streaming (audio starts before the text ends), else as one `synthesize` at the
end. Until the first audio is published a failed service is replaced by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from voice_common.errors import MqttCode
from voice_common.language import LANGUAGE_TAG
from voice_common.voice import check_speed, voice_options

from ..mqtt.replies import ReplyTo, SessionError, pcm_type
from .services import Service
from .session import Deps, Session, backend_error
from .stt import NAME_RE, optional_str
from .wyoming_client import BackendBusy, ServiceClient


def parse_speed(value: Any) -> float | None:
    """A request's or a site's `speed`, checked here against the range the TTS service takes,
    so a speed it would refuse is an `invalid_request` before any service is asked."""
    if value is None:
        return None
    try:
        return check_speed(value)
    except ValueError as err:
        raise SessionError(str(err), MqttCode.INVALID_REQUEST) from None


@dataclass(frozen=True)
class Voice:
    """Voice options of a request; unset fields fall back to the site's settings."""

    name: str | None = None
    speaker: str | None = None
    language: str | None = None
    speed: float | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Voice:
        voice = data.get("voice")
        if isinstance(voice, dict):  # {"voice": {"name": ..., "speaker": ...}}
            nested = {"voice": voice.get("name"), "speaker": voice.get("speaker")}
        elif voice is None or isinstance(voice, str):
            nested = {"voice": voice, "speaker": data.get("speaker")}
        else:
            raise SessionError("'voice' must be a name or an object", MqttCode.INVALID_REQUEST)
        return cls(
            optional_str(nested, "voice", NAME_RE), optional_str(nested, "speaker", NAME_RE),
            optional_str(data, "language", LANGUAGE_TAG), parse_speed(data.get("speed")),
        )

    def over(self, base: Voice) -> Voice:
        """These options, with `base` filling the unset ones."""
        return Voice(
            name=self.name if self.name is not None else base.name,
            speaker=self.speaker if self.speaker is not None else base.speaker,
            language=self.language if self.language is not None else base.language,
            speed=self.speed if self.speed is not None else base.speed,
        )

    def apply(self, event: Event) -> Event:
        """`event` (synthesize or synthesize-start) carrying these options, every one that is set."""
        event.data.update(voice_options(self.name, self.language, self.speaker, self.speed))
        return event


class TtsSession(Session):
    kind = "tts"
    backend = "tts"

    def __init__(self, site: str, rid: str, reply: ReplyTo, deps: Deps, voice: Voice, text: str | None) -> None:
        super().__init__(site, rid, reply, deps)
        self.voice = voice
        self.parts: list[str] = [] if text is None else [text]
        self.chars = 0 if text is None else len(text)
        self.ended = text is not None  # all text is in `parts`
        self.closed = self.ended  # no more input accepted
        self.audio_started = False
        self._format: tuple[int, int, int] | None = None
        self._chunks = self._bytes = 0
        self._first_audio: float | None = None

    # Called by the dispatcher: validate and queue, never block.
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
        await self.deps.replies.send(self.reply, "done", {
            "chunks": self._chunks, "bytes": self._bytes,
            "audio_ms": round(seconds * 1000), "latency_ms": round(latency * 1000),
        })

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
                    getter = asyncio.ensure_future(self.next_item())
                    await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        reader.result()  # raises the service's failure
                        raise SessionError("the TTS service ended the stream early", MqttCode.BACKEND_ERROR)
                    text = self._take(getter.result())
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
        if self.reply.expired():
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
        replies = self.deps.replies
        if not self.audio_started:
            self._check_expiry()
            self.audio_started = True
            self._format = fmt
            self._first_audio = time.monotonic()
            await replies.send(self.reply, "audio-start", {
                "rate": rate, "width": width, "channels": channels, "voice": self.voice.name})
        elif fmt != self._format:
            raise SessionError("the service changed the audio format mid-stream", MqttCode.INVALID_FORMAT)
        if not AudioChunk.is_type(event.type):
            return
        audio = AudioChunk.from_event(event).audio or b""
        frame = width * channels
        step = max(frame, self.deps.config.audio_chunk_bytes // frame * frame)
        content_type = pcm_type(rate, width, channels)
        for start in range(0, len(audio), step):
            piece = audio[start:start + step]
            self._chunks += 1
            self._bytes += len(piece)
            await replies.send(self.reply, "audio", piece, content_type=content_type, seq=self._chunks, qos=0)
