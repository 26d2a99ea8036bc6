"""`/api/v1/listen` and `/api/v1/speak`: the WebSocket protocol of /work/shared/WS_API.md on the core.

listen: ready -> start -> started -> binary PCM (any byte count) -> partial... -> stop ->
final -> stopped, then the server closes. `cancel` ends with stopped (reason cancelled).
speak: ready -> start -> started -> speak (text pieces, e.g. LLM tokens; the TTS service
speaks each sentence as soon as it is complete) -> audio frames -> stop -> complete ->
stopped, then the server closes. `cancel` drops what is queued and being spoken and keeps
the connection open: the next `speak` starts a new stream. Audio leaves as 16-bit PCM
(`pcm16`) or float32 (`pcm32f`) at the `sampleRate` asked for (default 24000 Hz, so
`started` can name the rate before any audio exists), binary or as JSON `audioChunk`s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket

from voice_common.audio import PcmConverter, float_to_pcm16
from voice_common.errors import MqttCode

from ..core.errors import SessionError
from ..core.payloads import Stop, SttRequest, Voice
from ..core.results import Audio, AudioFormat, Done, Failure, Final, Partial, Result
from ..core.stt import SttSession
from ..core.tts import TtsSession
from .ws_connection import Closing, WsConnection

router = APIRouter(tags=["websocket"])

ENCODINGS = ("pcm16", "pcm32f")
#: Rate of speak audio when `start` names none.
DEFAULT_SPEAK_RATE = 24000


@router.websocket("/api/v1/listen")
async def listen(ws: WebSocket) -> None:
    """Speech to text over a WebSocket (WS_API.md)."""
    await Listen(ws).serve()


@router.websocket("/api/v1/speak")
async def speak(ws: WebSocket) -> None:
    """Text to speech over a WebSocket (WS_API.md)."""
    await Speak(ws).serve()


def _choice(data: dict, key: str, choices: tuple[str, ...]) -> str:
    value = data.get(key, choices[0])
    if value not in choices:
        raise SessionError(f"'{key}' must be one of {', '.join(choices)}", MqttCode.INVALID_REQUEST)
    return value


class Float32ToPcm16:
    """pcm32f frames of any byte count -> pcm16 (the STT core takes 16-bit PCM)."""

    def __init__(self) -> None:
        self._carry = b""

    def convert(self, data: bytes) -> bytes:
        data = self._carry + data
        whole = len(data) - len(data) % 4
        self._carry = data[whole:]
        return float_to_pcm16(np.frombuffer(data[:whole], dtype="<f4"))


class Endpoint(WsConnection):
    """An endpoint whose session ends the connection: `ended` is set when it is over."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws)
        self.ended = asyncio.Event()

    async def wait_start(self) -> dict[str, Any]:
        """The `start` message; other frames get a recoverable error, but do not extend the
        --idle-timeout a start must come within."""
        deadline = time.monotonic() + self.config.idle_timeout
        while True:
            frame = await self.receive(max(0.001, deadline - time.monotonic()))
            if isinstance(frame, bytes):
                await self.error(MqttCode.INVALID_REQUEST, "audio before 'start'", True)
            elif frame["type"] != "start":
                await self.error(MqttCode.INVALID_REQUEST, f"'{frame['type']}' before 'start'", True)
            else:
                return frame

    async def run_until_ended(self) -> None:
        """Read frames until the session is over (then close normally)."""
        reader = asyncio.ensure_future(self.read_frames())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({reader, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            ended.cancel()
        if reader.done() and not reader.cancelled():
            reader.result()  # Closing / WebSocketDisconnect
        raise Closing()

    async def read_frames(self) -> None:
        raise NotImplementedError


class Listen(Endpoint):
    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws)
        self.session: SttSession | None = None
        self.float_input: Float32ToPcm16 | None = None
        self.cancelled = False

    def ready_message(self) -> dict[str, Any]:
        languages = sorted({lang for m in self.front.stt_models() for lang in m["languages"]})
        return {"type": "ready", "sessionId": self.id,
                "capabilities": {"streaming": True, "languages": languages, "encodings": list(ENCODINGS)}}

    async def main(self) -> None:
        while self.session is None:
            start = await self.wait_start()
            try:
                encoding = _choice(start, "encoding", ENCODINGS)
                request = SttRequest.parse({
                    "rate": start.get("sampleRate", 16000), "width": 2, "channels": start.get("channels", 1),
                    "language": start.get("language"), "partials": True, "model": start.get("model")})
            except SessionError as err:
                await self.session_error(err, True)
                continue
            await self.start_auth(start)
            try:
                self.session = self.front.core.open_stt(request, ListenSink(self), ident=self.id)
            except SessionError as err:
                await self.session_error(err, True)
                continue
            self.float_input = Float32ToPcm16() if encoding == "pcm32f" else None
            await self.send_json({"type": "started", "sampleRate": request.rate, "encoding": encoding,
                                  "channels": request.channels, "language": request.language})
        await self.run_until_ended()

    async def read_frames(self) -> None:
        session = self.session
        assert session is not None
        while True:
            frame = await self.receive(None)  # the session has its own idle timeout
            if isinstance(frame, bytes):
                session.feed(self.float_input.convert(frame) if self.float_input else frame)
            elif frame["type"] == "stop":
                session.stop(Stop.now())
            elif frame["type"] == "cancel":
                self.cancelled = True
                session.cancel()
            else:
                await self.error(MqttCode.INVALID_REQUEST, f"unexpected '{frame['type']}' during a session", True)

    async def cleanup(self) -> None:
        if self.session is not None and not self.ended.is_set():
            self.session.cancel()


class ListenSink:
    """Renders an STT session's results as listen messages."""

    def __init__(self, conn: Listen) -> None:
        self.conn = conn

    async def send(self, result: Result) -> None:
        conn = self.conn
        if isinstance(result, Partial):
            await conn.send_json({"type": "partial", "text": result.text})
        elif isinstance(result, Final):
            if conn.limiter is not None:
                conn.limiter.charge_audio(result.audio_ms / 1000)
            await conn.send_json({"type": "final", "text": result.text, "language": result.language,
                                  "durationMs": result.audio_ms})
            await conn.send_json({"type": "stopped", "reason": "stop"})
            conn.ended.set()
        elif isinstance(result, Failure):
            if result.code == MqttCode.CANCELLED and conn.cancelled:
                await conn.send_json({"type": "stopped", "reason": "cancelled"})
            else:
                await conn.error(result.code, result.text, False)
                await conn.send_json({"type": "stopped", "reason": "error"})
            conn.ended.set()


class Speak(Endpoint):
    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws)
        self.voice = Voice()
        self.rate = DEFAULT_SPEAK_RATE
        self.encoding = "pcm16"
        self.json_audio = False
        self.session: TtsSession | None = None
        self.sink: SpeakSink | None = None
        self.stopping: str | None = None
        self.seq = 0
        self.samples = 0

    def ready_message(self) -> dict[str, Any]:
        voices = self.front.voices()
        return {"type": "ready", "sessionId": self.id, "voiceLoaded": voices[0]["name"] if voices else None,
                "capabilities": {"streaming": True,
                                 "languages": sorted({lang for v in voices for lang in v["languages"]}),
                                 "voices": [v["name"] for v in voices], "encodings": list(ENCODINGS)}}

    async def main(self) -> None:
        while True:
            start = await self.wait_start()
            try:
                self.voice = Voice.parse({k: start.get(k) for k in ("voice", "language", "speed")})
                self.encoding = _choice(start, "encoding", ENCODINGS)
                self.json_audio = _choice(start, "transport", ("binary", "json")) == "json"
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

    async def read_frames(self) -> None:
        while True:
            idle = self.session is None and self.stopping is None
            frame = await self.receive(self.config.idle_timeout if idle else None)
            if isinstance(frame, bytes):
                await self.error(MqttCode.INVALID_REQUEST, "speak takes no binary frames", True)
            elif frame["type"] == "speak":
                await self.on_speak(frame)
            elif frame["type"] == "cancel":
                self.cancel_stream()
            elif frame["type"] == "stop":
                reason = frame.get("reason")
                self.stopping = reason if isinstance(reason, str) and len(reason) <= 200 else "stop"
                if self.session is not None:
                    self.session.end()
                else:
                    await self.send_json({"type": "stopped", "reason": self.stopping})
                    self.ended.set()
            else:
                await self.error(MqttCode.INVALID_REQUEST, f"unexpected '{frame['type']}' after 'start'", True)

    async def on_speak(self, frame: dict[str, Any]) -> None:
        text = frame.get("text")
        try:
            if not isinstance(text, str):
                raise SessionError("'text' must be a string", MqttCode.INVALID_REQUEST)
            if _choice(frame, "priority", ("normal", "high")) == "high":
                self.cancel_stream()  # barge-in: high-priority text replaces what is queued
            if self.stopping is not None:
                raise SessionError("'speak' after 'stop'", MqttCode.INVALID_REQUEST)
        except SessionError as err:
            await self.session_error(err, True)
            return
        if not text:
            return
        if self.session is None:
            sink = SpeakSink(self)
            try:
                self.session = self.front.core.open_tts(self.voice, sink, ident=self.id)
            except SessionError as err:
                await self.session_error(err, True)
                return
            self.sink = sink
            sink.session = self.session
        self.session.add_text(text)

    def cancel_stream(self) -> None:
        if self.session is not None and self.sink is not None:
            self.sink.cancelled = True
            self.session.cancel()
        self.session = self.sink = None

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
        """A stream's last result: complete (or error); after `stop`, stopped and the end."""
        if self.sink is sink:
            self.session = self.sink = None
        if isinstance(result, Done):
            if self.limiter is not None:
                self.limiter.charge_audio(result.audio_ms / 1000)
            await self.send_json({"type": "complete", "durationMs": round((time.monotonic() - sink.opened) * 1000),
                                  "charactersProcessed": sink.chars(), "audioLengthMs": result.audio_ms})
        else:
            await self.error(result.code, result.text, self.stopping is None)
        if self.stopping is not None:
            await self.send_json({"type": "stopped", "reason": self.stopping if isinstance(result, Done)
                                  else "error"})
            self.ended.set()

    async def cleanup(self) -> None:
        self.cancel_stream()


class SpeakSink:
    """Renders one TTS stream's results as speak messages; silent once cancelled."""

    def __init__(self, conn: Speak) -> None:
        self.conn = conn
        self.cancelled = False
        self.opened = time.monotonic()
        self.converter: PcmConverter | None = None
        self.session: TtsSession | None = None

    def chars(self) -> int:
        return self.session.chars if self.session is not None else 0

    def _out(self, samples: np.ndarray) -> bytes:
        if self.conn.encoding == "pcm16":
            return float_to_pcm16(samples)
        # Resampling full-scale speech overshoots a little (Gibbs): clip as pcm16 does, so
        # float clients get the [-1, 1] range they assume.
        return np.clip(samples, -1.0, 1.0).astype("<f4").tobytes()

    async def send(self, result: Result) -> None:
        if self.cancelled:
            return
        conn = self.conn
        if isinstance(result, AudioFormat):
            self.converter = PcmConverter(result.rate, result.width, result.channels, target_rate=conn.rate)
        elif isinstance(result, Audio) and self.converter is not None:
            await conn.audio(self._out(self.converter.convert(result.data)))
        elif isinstance(result, Done):
            if self.converter is not None:
                with contextlib.suppress(ValueError):
                    await conn.audio(self._out(self.converter.flush()))
            await conn.stream_over(self, result)
        elif isinstance(result, Failure):
            await conn.stream_over(self, result)
