"""The Wyoming STT protocol handler: one per connection, any backend.

describe -> info; transcribe + audio-start/chunk/stop -> transcript-start,
transcript-chunk (partials), transcript, transcript-stop. Every failure becomes
an `error` event with a code, after which the runtime closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong

from voice_common.audio import SPEECH_RATE, AudioFormatError, PcmConverter
from voice_common.errors import WyomingCode
from voice_common.language import primary_language
from voice_common.protocol import ProtocolError
from voice_common.server import Connection, SessionSlots
from voice_common.settings import ConnectionLimits

from .backends import DecodeOptions
from .config import SttConfig
from .engine import Engine
from .metrics import SttMetrics
from .streaming import StreamingDecoder

_LOGGER = logging.getLogger(__name__)

MAX_HOTWORDS = 100
MAX_HOTWORD_CHARS = 600


class SttService:
    """What all connections share: the engine, settings, info, limits, metrics, and the
    languages of the loaded model (known once it has loaded)."""

    def __init__(self, config: SttConfig, engine: Engine, metrics: SttMetrics, info: Info,
                 languages: Sequence[str]) -> None:
        self.config = config
        self.engine = engine
        self.metrics = metrics
        self.info = info
        self.languages = tuple(languages)
        self.slots = SessionSlots(config.max_sessions, config.max_queued, config.queue_timeout)

    def connection(self, writer: asyncio.StreamWriter, limits: ConnectionLimits) -> SttConnection:
        return SttConnection(self, writer, limits)


def whisper_language(language: str | None) -> str | None:
    """'en-US' / 'en_us' -> 'en' (Whisper languages are ISO 639-1 codes); None for none."""
    return primary_language(language) if language else None


class SttConnection(Connection):
    def __init__(self, service: SttService, writer: asyncio.StreamWriter, limits: ConnectionLimits) -> None:
        super().__init__(writer, limits)
        self.service = service
        self._request: Transcribe | None = None
        self._decoder: StreamingDecoder | None = None
        self._converter: PcmConverter | None = None
        self._has_slot = False

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write(self.service.info.event())
        elif Ping.is_type(event.type):
            await self.write(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            if self._decoder is not None:
                raise ProtocolError("transcribe received during an audio stream", WyomingCode.BAD_REQUEST)
            self._request = Transcribe.from_event(event)
        elif AudioStart.is_type(event.type):
            await self._start(AudioStart.from_event(event))
        elif AudioChunk.is_type(event.type):
            self._chunk(event)
        elif AudioStop.is_type(event.type):
            await self._stop()
        else:
            _LOGGER.debug("ignoring event %s", event.type)
        return True

    def _options(self) -> DecodeOptions:
        config = self.service.config
        request = self._request or Transcribe()
        language = whisper_language(request.language) or whisper_language(config.language)
        languages = self.service.languages
        if language is not None and language not in languages:
            raise ProtocolError(
                f"language {request.language or config.language!r} is not supported by model "
                f"{config.model!r} (supported: {', '.join(languages[:10])}{'...' if len(languages) > 10 else ''})",
                WyomingCode.UNSUPPORTED_LANGUAGE,
            )
        hotwords: list[str] = []
        for item in (request.transcript_names or []) + (request.transcript_terms or []):
            if not isinstance(item, str):
                raise ProtocolError("transcript_names/terms must be strings", WyomingCode.BAD_REQUEST)
            item = item.strip()
            if item and item not in hotwords and len(hotwords) < MAX_HOTWORDS:
                if sum(len(h) + 1 for h in hotwords) + len(item) > MAX_HOTWORD_CHARS:
                    break
                hotwords.append(item)
        return DecodeOptions(
            language=language,
            initial_prompt=config.initial_prompt,
            hotwords=tuple(hotwords),
            beam_size=config.beam_size,
        )

    async def _start(self, start: AudioStart) -> None:
        if self._decoder is not None:
            raise ProtocolError("audio-start received twice", WyomingCode.BAD_REQUEST)
        try:
            self._converter = PcmConverter(start.rate, start.width, start.channels)
        except AudioFormatError as err:
            raise ProtocolError(str(err), WyomingCode.INVALID_FORMAT) from err
        options = self._options()
        slots = self.service.slots
        if not await slots.acquire():  # waits its turn; the client's audio waits in the socket
            raise ProtocolError(
                f"server busy: {slots.limit} transcriptions in progress and {slots.waiting} waiting "
                f"(--max-sessions, --max-queued, --queue-timeout {slots.timeout:g} s)", WyomingCode.BUSY
            )
        self._has_slot = True
        self.service.metrics.active_sessions.inc()
        config = self.service.config
        self._decoder = StreamingDecoder(
            self.service.engine,
            options,
            on_partial=self._send_partial if config.streaming else None,
            spawn=lambda coro: self.spawn(coro, "stt-decode"),
            partial_interval=config.partial_interval,
            trim=config.vad,
        )
        if config.streaming:
            context = (self._request.context if self._request else None)
            await self.write(TranscriptStart(language=options.language, context=context).event())

    async def _send_partial(self, text: str) -> None:
        if not self.closed:
            await self.write(TranscriptChunk(text=text).event())

    def _chunk(self, event: Event) -> None:
        if self._decoder is None or self._converter is None:
            raise ProtocolError("audio-chunk received before audio-start", WyomingCode.BAD_REQUEST)
        try:
            chunk = AudioChunk.from_event(event)
        except (KeyError, TypeError) as err:
            raise ProtocolError("audio-chunk without rate/width/channels", WyomingCode.INVALID_FORMAT) from err
        conv = self._converter
        if (chunk.rate, chunk.width, chunk.channels) != (conv.rate, conv.width, conv.channels):
            raise ProtocolError(
                f"audio-chunk format {chunk.rate}/{chunk.width}/{chunk.channels} differs from "
                f"audio-start {conv.rate}/{conv.width}/{conv.channels}",
                WyomingCode.INVALID_FORMAT,
            )
        try:
            samples = conv.convert(chunk.audio or b"")
        except AudioFormatError as err:
            raise ProtocolError(str(err), WyomingCode.INVALID_FORMAT) from err
        limit = self.service.config.max_audio_seconds
        if self._decoder.samples + samples.size > limit * SPEECH_RATE:
            raise ProtocolError(f"audio longer than the limit of {limit:g} s", WyomingCode.TOO_LARGE)
        self._decoder.add(samples)

    async def _stop(self) -> None:
        decoder, converter = self._decoder, self._converter
        if decoder is None or converter is None:
            raise ProtocolError("audio-stop received before audio-start", WyomingCode.BAD_REQUEST)
        try:
            decoder.add(converter.flush())
        except AudioFormatError as err:
            raise ProtocolError(str(err), WyomingCode.INVALID_FORMAT) from err
        stop_at = time.perf_counter()
        result = await decoder.finish()
        metrics, backend = self.service.metrics, self.service.engine.backend_name
        metrics.latency.labels(backend).observe(time.perf_counter() - stop_at)
        metrics.requests.labels(backend).inc()
        metrics.audio_seconds.labels(backend).inc(decoder.samples / SPEECH_RATE)
        if decoder.speculative_hits:
            metrics.speculative_hits.labels(backend).inc()
        _LOGGER.debug("transcript: %s", result.text)
        _LOGGER.info(
            "transcribed %.2f s of audio in %.0f ms after audio-stop",
            decoder.samples / SPEECH_RATE, (time.perf_counter() - stop_at) * 1000,
        )
        context = self._request.context if self._request else None
        if self.service.config.streaming:
            delta = decoder.final_delta(result.text)
            if delta:
                await self.write(TranscriptChunk(text=delta).event())
        await self.write(Transcript(text=result.text, language=result.language, context=context).event())
        if self.service.config.streaming:
            await self.write(TranscriptStop().event())
        self._end_session()
        self._request = None

    def _end_session(self) -> None:
        self._decoder = None
        self._converter = None
        if self._has_slot:
            self._has_slot = False
            self.service.slots.release()
            self.service.metrics.active_sessions.dec()

    async def send_error(self, text: str, code: WyomingCode) -> None:
        self.service.metrics.errors.labels(code).inc()
        await super().send_error(text, code)

    async def on_close(self) -> None:
        self._end_session()
