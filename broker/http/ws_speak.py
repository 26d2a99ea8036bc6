"""`/api/v1/speak`: text to speech over a WebSocket (WS_API.md), made for a chat backend
that streams a reply's LLM tokens and keeps the connection for the next reply.

ready -> start -> started -> speak... -> audio -> complete (one per reply) ... -> stop ->
complete -> stopped, then the server closes. Audio leaves as `pcm16` or `pcm32f` at the
`sampleRate` asked for (default 24000 Hz, so `started` can name the rate before any audio
exists), binary or as JSON `audioChunk`s.

Replies. `speak` text goes to a TTS stream (a core TtsSession) that stays open for more
text. When no `speak` has come for `flush_delay` seconds the stream is ended gracefully:
the service speaks every character sent, an unfinished last sentence too, and `complete`
follows the stream's last audio. A `speak` that arrives while that stream is still being
spoken waits as queued text and opens the next stream when it is over: nothing lost or
spoken twice, and no second session slot. A sentence split by a longer pause is spoken in
two parts.

Priority. `"priority": "high"` text gets a stream of its own, ended at once (one high
message is one utterance), and is heard first: the normal stream's audio after the chunk
in flight is held (up to HELD_AUDIO_SECONDS, then its TTS session waits for the socket)
until the high stream is complete, then continues where it stopped. That second stream
takes a second global session slot (--max-sessions), not another per-key stream (the
connection holds one): when no slot is free the high text is refused with a recoverable
`busy` error and the normal stream goes on. High text sent while a high stream is in
progress is queued behind it, still ahead of normal text. `cancel` drops both streams and
all queued text (barge-in); the connection stays open.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import deque
from typing import Any

import numpy as np
from fastapi import WebSocket

from voice_common.audio import PcmConverter, float_to_pcm16
from voice_common.errors import MqttCode

from ..core.errors import SessionError
from ..core.payloads import Voice
from ..core.results import Audio, AudioFormat, Done, Failure, Result
from ..core.tts import TtsSession
from .ws_connection import ENCODINGS, Endpoint, choice

#: Rate of speak audio when `start` names none.
DEFAULT_SPEAK_RATE = 24000
#: Seconds without a `speak` after which the reply so far is spoken to its end. Long enough
#: that an LLM's tokens (tens per second, with short stalls) stay one stream; capped at half
#: of --idle-timeout, since the core ends a stream waiting that long for text with `timeout`.
FLUSH_SECONDS = 1.5
#: Seconds of a normal stream's audio held while high-priority audio goes out first.
HELD_AUDIO_SECONDS = 30.0
#: Seconds an idle connection (started, nothing being spoken) stays open: a chat's next
#: reply may be minutes away, but not forever. Before `start`, --idle-timeout applies.
CONNECTION_IDLE_SECONDS = 300.0

PRIORITIES = ("normal", "high")


class Speak(Endpoint):
    """One speak connection: at most one normal and one high stream, and their queued text."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws)
        self.voice = Voice()
        self.rate = DEFAULT_SPEAK_RATE
        self.encoding = "pcm16"
        self.json_audio = False
        #: The normal stream (open for text, or ended and still being spoken) and the high one.
        self.normal: SpeakSink | None = None
        self.high: SpeakSink | None = None
        #: Text waiting for its stream to be opened, per priority.
        self.queued = dict.fromkeys(PRIORITIES, "")
        self.stopping: str | None = None
        self.seq = 0
        self.samples = 0
        self._flush: asyncio.TimerHandle | None = None
        self._turn = asyncio.Event()  # set (and replaced) when the stream first in line changes

    def ready_message(self) -> dict[str, Any]:
        voices = self.front.voices()
        return {"type": "ready", "sessionId": self.id, "voiceLoaded": voices[0]["name"] if voices else None,
                "capabilities": {"streaming": True,
                                 "languages": sorted({lang for v in voices for lang in v["languages"]}),
                                 "voices": [v["name"] for v in voices], "encodings": list(ENCODINGS)}}

    @property
    def flush_delay(self) -> float:
        return min(FLUSH_SECONDS, self.config.idle_timeout / 2)

    async def main(self) -> None:
        while True:
            start = await self.wait_start()
            try:
                self.voice = Voice.parse({k: start.get(k) for k in ("voice", "language", "speed")})
                self.encoding = choice(start, "encoding", ENCODINGS)
                self.json_audio = choice(start, "transport", ("binary", "json")) == "json"
                rate = start.get("sampleRate", DEFAULT_SPEAK_RATE)
                if not isinstance(rate, int) or isinstance(rate, bool) or not 8000 <= rate <= 48000:
                    raise SessionError("'sampleRate' must be an integer in 8000..48000", MqttCode.INVALID_FORMAT)
                self.rate = rate
            except SessionError as err:
                await self.session_error(err, True)
                continue
            break
        await self.start_auth(start)
        voices = self.front.voices()
        await self.send_json({"type": "started", "sampleRate": self.rate, "encoding": self.encoding,
                              "voice": self.voice.name or (voices[0]["name"] if voices else None)})
        await self.run_until_ended()

    def idle(self) -> bool:
        """Nothing being spoken or waiting to be."""
        return self.normal is None and self.high is None and not any(self.queued.values())

    async def read_frames(self) -> None:
        while True:
            idle = self.idle() and self.stopping is None
            frame = await self.receive(max(CONNECTION_IDLE_SECONDS, self.config.idle_timeout) if idle else None)
            if isinstance(frame, bytes):
                await self.error(MqttCode.INVALID_REQUEST, "speak takes no binary frames", True)
            elif frame["type"] == "speak":
                await self.on_speak(frame)
            elif frame["type"] == "cancel":
                self.cancel_streams()
                if self.stopping is not None:
                    await self.finish("cancelled")
            elif frame["type"] == "stop":
                reason = frame.get("reason")
                self.stopping = reason if isinstance(reason, str) and len(reason) <= 200 else "stop"
                self._cancel_flush()
                if self.normal is not None and self.normal.session is not None:
                    self.normal.session.end()
                if self.idle():
                    await self.finish(self.stopping)
            else:
                await self.error(MqttCode.INVALID_REQUEST, f"unexpected '{frame['type']}' after 'start'", True)

    async def finish(self, reason: str) -> None:
        await self.send_json({"type": "stopped", "reason": reason})
        self.ended.set()

    # -- text in -------------------------------------------------------------------
    async def on_speak(self, frame: dict[str, Any]) -> None:
        text = frame.get("text")
        try:
            if not isinstance(text, str):
                raise SessionError("'text' must be a string", MqttCode.INVALID_REQUEST)
            priority = choice(frame, "priority", PRIORITIES)
            if self.stopping is not None:
                raise SessionError("'speak' after 'stop'", MqttCode.INVALID_REQUEST)
        except SessionError as err:
            await self.session_error(err, True)
            return
        self._schedule_flush()
        if not text:
            return
        if priority == "high":
            if self.high is not None:
                await self._queue("high", text)
            else:
                self.high = await self._open(text, high=True)
                self._turn_changed()
        elif self.normal is None:
            self.normal = await self._open(text, high=False)
        elif self.normal.session is not None and not self.normal.session.closed:
            self.normal.session.add_text(text)
        else:  # ended and still being spoken: the next stream opens when it is over
            await self._queue("normal", text)

    async def _queue(self, priority: str, text: str) -> None:
        limit = self.config.max_text_chars
        if len(self.queued[priority]) + len(text) > limit:
            await self.error(MqttCode.TOO_LARGE, f"more than {limit} characters waiting to be spoken", True)
        else:
            self.queued[priority] += text

    async def _open(self, text: str, *, high: bool) -> SpeakSink | None:
        """A new stream of `text`: a high one is ended at once, a normal one stays open for
        more text while a flush is due. None when refused (the error is sent)."""
        sink = SpeakSink(self)
        core = self.front.core
        try:
            session = core.open_tts(self.voice, sink, text=text, ident=self.id) if high else \
                core.open_tts(self.voice, sink, ident=self.id)
        except SessionError as err:
            if high and err.code == MqttCode.BUSY:
                err = SessionError(f"no session slot for a high-priority stream ({err.text}); the text was not "
                                   "spoken: send it again, or cancel and speak it", MqttCode.BUSY)
            await self.session_error(err, True)
            return None
        sink.session = session
        if not high:
            session.add_text(text)
            if self.stopping is not None or self._flush is None:
                session.end()
        return sink

    def _schedule_flush(self) -> None:
        self._cancel_flush()
        self._flush = asyncio.get_running_loop().call_later(self.flush_delay, self._end_reply)

    def _cancel_flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def _end_reply(self) -> None:
        """No `speak` for flush_delay: the normal stream speaks what it has, then completes."""
        self._flush = None
        if self.normal is not None and self.normal.session is not None:
            self.normal.session.end()

    def cancel_streams(self) -> None:
        for sink in (self.normal, self.high):
            if sink is not None:
                sink.cancelled = True
                if sink.session is not None:
                    sink.session.cancel()
        self.normal = self.high = None
        self.queued = dict.fromkeys(PRIORITIES, "")
        self._cancel_flush()
        self._turn_changed()

    # -- audio out -----------------------------------------------------------------
    def _turn_changed(self) -> None:
        self._turn.set()
        self._turn = asyncio.Event()

    def first_in_line(self) -> SpeakSink | None:
        return self.high or self.normal

    async def play(self, sink: SpeakSink, pcm: bytes, *, last: bool = False) -> None:
        """Send a stream's audio in turn: at once (after what it holds) when it is first in
        line, else held while there is room; otherwise, and for its `last` audio, wait."""
        limit = int(HELD_AUDIO_SECONDS * self.rate) * (2 if self.encoding == "pcm16" else 4)
        while not sink.cancelled:
            if sink is self.first_in_line():
                async with sink.out_lock:
                    while sink.held and sink is self.first_in_line():  # a high stream may cut in
                        chunk = sink.held.popleft()
                        sink.held_bytes -= len(chunk)
                        await self.audio(chunk)
                    if sink is self.first_in_line():
                        await self.audio(pcm)
                        return
                continue  # overtaken: hold `pcm` behind what is still held, or wait
            if not last and sink.held_bytes + len(pcm) <= limit:
                sink.held.append(pcm)
                sink.held_bytes += len(pcm)
                return
            await self._turn.wait()

    async def audio(self, pcm: bytes) -> None:
        if not pcm:
            return
        if self.json_audio:
            self.seq += 1
            await self.send_json({"type": "audioChunk", "data": base64.b64encode(pcm).decode(),
                                  "sequenceNumber": self.seq, "isFinal": False,
                                  "timestampMs": self.samples * 1000 // self.rate})
        else:
            await self.send_bytes(pcm)
        self.samples += len(pcm) // (2 if self.encoding == "pcm16" else 4)

    async def stream_over(self, sink: SpeakSink, result: Done | Failure) -> None:
        """A stream's last result (its audio is out): complete or error; then the queued
        streams open; after `stop` with nothing left, stopped and the end."""
        if sink.cancelled:
            return
        if isinstance(result, Done):
            if self.limiter is not None:
                self.limiter.charge_audio(result.audio_ms / 1000)
            await self.send_json({"type": "complete", "durationMs": round((time.monotonic() - sink.opened) * 1000),
                                  "charactersProcessed": sink.chars(), "audioLengthMs": result.audio_ms})
        else:
            await self.error(result.code, result.text, self.stopping is None)
            if self.stopping is not None:
                self.cancel_streams()
                await self.finish("error")
                return
        if sink is self.high:  # only now, so that nothing of the next stream precedes `complete`
            self.high = None
        elif sink is self.normal:
            self.normal = None
        if self.high is None and self.queued["high"]:
            text, self.queued["high"] = self.queued["high"], ""
            self.high = await self._open(text, high=True)
        if self.normal is None and self.queued["normal"]:
            text, self.queued["normal"] = self.queued["normal"], ""
            self.normal = await self._open(text, high=False)
        self._turn_changed()
        waiting = self.first_in_line()
        if waiting is not None and waiting.held:
            await self.play(waiting, b"")  # what it held while this stream went first
        if self.stopping is not None and self.idle():
            await self.finish(self.stopping)

    async def cleanup(self) -> None:
        self.cancel_streams()


class SpeakSink:
    """Renders one TTS stream's results as speak messages, in its turn; silent once cancelled."""

    def __init__(self, conn: Speak) -> None:
        self.conn = conn
        self.cancelled = False
        self.opened = time.monotonic()
        self.converter: PcmConverter | None = None
        self.session: TtsSession | None = None
        #: Audio held while another stream goes first, and the lock that keeps its order.
        self.held: deque[bytes] = deque()
        self.held_bytes = 0
        self.out_lock = asyncio.Lock()

    def chars(self) -> int:
        return self.session.chars if self.session is not None else 0

    def _out(self, samples: np.ndarray) -> bytes:
        if self.conn.encoding == "pcm16":
            return float_to_pcm16(samples)
        # clipped like pcm16: resampling rings past full scale, and pcm32f means -1..1
        return np.clip(samples, -1.0, 1.0).astype("<f4").tobytes()

    async def send(self, result: Result) -> None:
        if self.cancelled:
            return
        conn = self.conn
        if isinstance(result, AudioFormat):
            self.converter = PcmConverter(result.rate, result.width, result.channels, target_rate=conn.rate)
        elif isinstance(result, Audio) and self.converter is not None:
            await conn.play(self, self._out(self.converter.convert(result.data)))
        elif isinstance(result, Done):
            tail = b""
            if self.converter is not None:
                with contextlib.suppress(ValueError):
                    tail = self._out(self.converter.flush())
            await conn.play(self, tail, last=True)  # waits for its turn: complete follows its audio
            await conn.stream_over(self, result)
        elif isinstance(result, Failure):
            await conn.stream_over(self, result)
