"""`/api/v1/speak`: text to speech over a WebSocket (WS_API.md).

ready -> start -> started -> speak (text pieces, e.g. LLM tokens; the TTS service
speaks each sentence as soon as it is complete) -> audio frames -> stop -> complete ->
stopped, then the server closes. `cancel` drops what is queued and being spoken and keeps
the connection open: the next `speak` starts a new stream. Audio leaves as 16-bit PCM
(`pcm16`) or float32 (`pcm32f`) at the `sampleRate` asked for (default 24000 Hz, so
`started` can name the rate before any audio exists), binary or as JSON `audioChunk`s.
"""

from __future__ import annotations

import base64
import contextlib
import time
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
            if choice(frame, "priority", ("normal", "high")) == "high":
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
