"""The Wyoming TTS protocol: describe, synthesize, and streaming synthesize-start/chunk/stop.

One `TtsConnection` per client. A plain `synthesize` is answered in place
(audio-start, chunks, audio-stop). A stream keeps reading text chunks while a
background task speaks each sentence as soon as it is complete, under one
audio-start for the whole stream, and always ends with synthesize-stopped.
Every failure becomes an `error` event and the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from wyoming.audio import AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from voice_common.errors import WyomingCode
from voice_common.protocol import ClientGone, ProtocolError
from voice_common.server import Connection, SessionSlots
from voice_common.settings import ConnectionLimits
from voice_common.voice import check_speed

from .backends import BackendError
from .backends.piper_download import VoiceNotInIndex
from .config import TtsConfig
from .engine import Plan, SynthesisFailed, Synthesizer, UnknownSpeaker, UnknownVoice, UnsupportedLanguage
from .metrics import TtsMetrics
from .pipeline import AudioPipeline
from .text import SentenceBuffer, split_sentences
from .voice_edits import VoiceEditor
from .voices import PromptCache, VoiceStore

_LOGGER = logging.getLogger(__name__)
_SSML_TAG = re.compile(r"<[^>]*>")


@dataclass
class TtsService:
    """What all connections share."""

    engine: Synthesizer
    metrics: TtsMetrics
    slots: SessionSlots
    #: The `info` event now (voice profiles come and go at run time).
    describe: Callable[[], Event]
    config: TtsConfig
    #: The voice profiles and their prompt cache, when a cloning backend uses them.
    store: VoiceStore | None = None
    prompts: PromptCache | None = None
    cached_info: list[Event] = field(default_factory=list)

    def info(self) -> Event:
        """`describe()` once, until a profile is created or deleted."""
        if not self.cached_info:
            self.cached_info.append(self.describe())
        return self.cached_info[0]

    def voices_changed(self) -> None:
        self.cached_info.clear()
    #: Voice name -> its download in progress: one per voice, shared by every request for it.
    installs: dict[str, asyncio.Future[bool]] = field(default_factory=dict)

    async def install(self, name: str) -> bool:
        """Download and load voice `name` off the event loop (False: no backend can). A client
        that leaves does not cancel a download others may be waiting for."""
        future = self.installs.get(name)
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(self.engine.install_voice, name))
            self.installs[name] = future
            future.add_done_callback(lambda done: self._installed(name, done))
        return await asyncio.shield(future)

    def _installed(self, name: str, done: asyncio.Future[bool]) -> None:
        """A download ended: forget it, and list the voice in `info` if it is now installed
        (even when every client that asked for it has left; their failure was theirs to see)."""
        self.installs.pop(name, None)
        if not done.cancelled() and done.exception() is None and done.result():
            self.voices_changed()


@dataclass
class _Stream:
    pipeline: AudioPipeline
    task: asyncio.Task
    buffer: SentenceBuffer
    plan: Plan
    chars: int = 0


class TtsConnection(Connection):
    def __init__(self, writer: asyncio.StreamWriter, limits: ConnectionLimits, service: TtsService) -> None:
        super().__init__(writer, limits)
        self._service = service
        self._stream: _Stream | None = None
        self._has_slot = False
        self._failed = False
        self._voices = VoiceEditor(service.store, service.prompts, service.config.voice_edits,
                                   service.voices_changed)

    async def handle_event(self, event: Event) -> bool:
        if self._voices.uploading or event.type.startswith("voice-"):
            reply = await self._voices.handle(event)
            if reply is not None:
                await self.write(reply)
        elif Describe.is_type(event.type):
            await self.write(self._service.info())
        elif Ping.is_type(event.type):
            await self.write(Pong(text=Ping.from_event(event).text).event())
        elif Synthesize.is_type(event.type):
            if self._stream is None:  # inside a stream it is only sent for compatibility
                await self._synthesize(event.data)
        elif SynthesizeStart.is_type(event.type):
            await self._start_stream(event.data)
        elif SynthesizeChunk.is_type(event.type):
            return await self._stream_chunk(event.data)
        elif SynthesizeStop.is_type(event.type):
            return await self._stop_stream()
        else:
            _LOGGER.debug("ignoring event %s", event.type)
        return True

    async def send_error(self, text: str, code: WyomingCode) -> None:
        if not self._failed:
            self._failed = True
            self._service.metrics.errors.labels(code).inc()
        await super().send_error(text, code)

    async def on_close(self) -> None:
        if self._stream is not None and not self._failed:
            self._service.metrics.cancelled.inc()
            _LOGGER.info("client left during a stream; synthesis stopped")
        self._stream = None
        self._release()

    # -- one-shot synthesize ---------------------------------------------
    async def _synthesize(self, data: dict) -> None:
        text = _text(data, "text")
        self._check_size(len(text))
        plan = await self._plan(data)
        self._acquire()
        try:
            pipeline = self._pipeline(plan)

            async def feed() -> None:
                for sentence in split_sentences(text):
                    await pipeline.put_sentence(sentence)
                await pipeline.end()

            feeder = asyncio.ensure_future(feed())
            try:
                await pipeline.run()
            except SynthesisFailed as err:
                raise ProtocolError(f"synthesis failed: {err}", WyomingCode.SYNTHESIS_FAILED) from err
            except ClientGone:
                self._service.metrics.cancelled.inc()
                _LOGGER.info("client left during synthesis; stopped")
                raise
            finally:
                feeder.cancel()
            if not pipeline.audio_started:  # nothing speakable: an empty but well-formed answer
                await self.write(AudioStart(rate=plan.native_rate, width=2, channels=1).event())
            await self.write(AudioStop().event())
            self._count(plan)
        finally:
            self._release()

    # -- streaming ---------------------------------------------------------
    async def _start_stream(self, data: dict) -> None:
        if self._stream is not None:
            raise ProtocolError("synthesize-start while a stream is open", WyomingCode.BAD_REQUEST)
        plan = await self._plan(data)
        self._acquire()
        pipeline = self._pipeline(plan)
        task = self.spawn(self._run_stream(pipeline), name="tts-stream")
        self._stream = _Stream(pipeline, task, SentenceBuffer(early_head=plan.short_first_piece), plan)

    async def _run_stream(self, pipeline: AudioPipeline) -> None:
        try:
            await pipeline.run()
        except SynthesisFailed as err:
            await self._fail(f"synthesis failed: {err}", WyomingCode.SYNTHESIS_FAILED)
        except ClientGone:
            raise
        except Exception as err:  # tell the client, never leave it waiting
            _LOGGER.exception("stream synthesis failed")
            await self._fail(f"internal error: {type(err).__name__}", WyomingCode.INTERNAL_ERROR)

    async def _fail(self, text: str, code: WyomingCode) -> None:
        """From the background task: send the error, then close (the reader sees EOF)."""
        _LOGGER.info("closing connection: %s (%s)", text, code)
        await self.send_error(text, code)
        self._writer.close()

    async def _stream_chunk(self, data: dict) -> bool:
        stream = self._stream
        if stream is None:
            raise ProtocolError("synthesize-chunk without synthesize-start", WyomingCode.BAD_REQUEST)
        text = _text(data, "text")
        stream.chars += len(text)
        self._check_size(stream.chars)
        for sentence in stream.buffer.add(text):
            if not await self._feed(stream, stream.pipeline.put_sentence(sentence)):
                return False
        return True

    async def _stop_stream(self) -> bool:
        stream = self._stream
        if stream is None:
            raise ProtocolError("synthesize-stop without synthesize-start", WyomingCode.BAD_REQUEST)
        for sentence in stream.buffer.flush():
            if not await self._feed(stream, stream.pipeline.put_sentence(sentence)):
                return False
        if not await self._feed(stream, stream.pipeline.end()):
            return False
        await stream.task  # the rest of the audio; a vanished client surfaces as ClientGone
        if self._failed:
            return False
        if stream.pipeline.audio_started:
            await self.write(AudioStop().event())
        await self.write(SynthesizeStopped().event())
        self._count(stream.plan)
        self._stream = None
        self._release()
        return True

    async def _feed(self, stream: _Stream, put) -> bool:
        """Queue text unless the stream task has ended (it has then sent the error)."""
        putter = asyncio.ensure_future(put)
        done, _ = await asyncio.wait({putter, stream.task}, return_when=asyncio.FIRST_COMPLETED)
        if putter in done:
            putter.result()
            return True
        putter.cancel()
        return False

    # -- shared ------------------------------------------------------------
    def _pipeline(self, plan: Plan) -> AudioPipeline:
        service = self._service
        return AudioPipeline(service.engine, plan, self.write, service.config.samples_per_chunk, self._alive,
                             sentence_silence=service.config.sentence_silence)

    def _alive(self) -> bool:
        """False as soon as the transport saw the connection drop, even while no event is being read."""
        return not self._writer.is_closing()

    async def _plan(self, data: dict) -> Plan:
        voice = data.get("voice") or {}
        if not isinstance(voice, dict):
            raise ProtocolError("'voice' must be an object", WyomingCode.BAD_REQUEST)
        name, language, speaker = (_optional_str(voice, key) for key in ("name", "language", "speaker"))
        try:
            speed = check_speed(data.get("speed", voice.get("speed", self._service.config.speed)))
        except ValueError as err:
            raise ProtocolError(str(err), WyomingCode.BAD_REQUEST) from err
        try:
            try:
                return self._service.engine.plan(name, language, speaker, speed)
            except UnknownVoice:
                if not name or not await self._install(name):
                    raise
                return self._service.engine.plan(name, language, speaker, speed)
        except UnknownVoice as err:
            raise ProtocolError(str(err), WyomingCode.UNKNOWN_VOICE) from err
        except UnknownSpeaker as err:
            raise ProtocolError(str(err), WyomingCode.UNKNOWN_SPEAKER) from err
        except UnsupportedLanguage as err:
            raise ProtocolError(str(err), WyomingCode.UNSUPPORTED_LANGUAGE) from err

    async def _install(self, name: str) -> bool:
        """A voice the request names and no backend has loaded: download it where allowed."""
        _LOGGER.info("voice %r is not installed: trying to install it", name)
        try:
            return await self._service.install(name)
        except (VoiceNotInIndex, BackendError) as err:
            raise ProtocolError(str(err), WyomingCode.UNKNOWN_VOICE) from err

    def _check_size(self, chars: int) -> None:
        limit = self._service.config.max_text_chars
        if chars > limit:
            raise ProtocolError(f"text of {chars} characters exceeds the limit of {limit}", WyomingCode.TOO_LARGE)

    def _acquire(self) -> None:
        if not self._service.slots.try_acquire():
            raise ProtocolError(f"all {self._service.slots.limit} synthesis sessions are busy", WyomingCode.BUSY)
        self._has_slot = True
        self._service.metrics.active_sessions.inc()

    def _release(self) -> None:
        if self._has_slot:
            self._has_slot = False
            self._service.slots.release()
            self._service.metrics.active_sessions.dec()

    def _count(self, plan: Plan) -> None:
        for backend in plan.served_by or [plan.candidates[0].backend.name]:
            self._service.metrics.requests.labels(backend).inc()


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"'{key}' must be a string", WyomingCode.BAD_REQUEST)
    if data.get("text_format") == "ssml":
        value = _SSML_TAG.sub(" ", value)
    return value


def _optional_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"voice '{key}' must be a string", WyomingCode.BAD_REQUEST)
    return value or None
