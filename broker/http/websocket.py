"""`/api/v1/listen` and `/api/v1/speak`: the WebSocket protocol of /work/shared/WS_API.md on the core.

listen: ready -> start -> started -> binary PCM (any byte count) -> partial... -> stop ->
final -> stopped, then the server closes. `cancel` ends with stopped (reason cancelled).
speak: see ws_speak.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket

from voice_common.audio import float_to_pcm16
from voice_common.errors import MqttCode

from ..core.errors import SessionError
from ..core.payloads import Stop, SttRequest
from ..core.results import Failure, Final, Partial, Result
from ..core.stt import SttSession
from .ws_connection import ENCODINGS, Endpoint, choice
from .ws_speak import Speak

router = APIRouter(tags=["websocket"])


@router.websocket("/api/v1/listen")
async def listen(ws: WebSocket) -> None:
    """Speech to text over a WebSocket (WS_API.md)."""
    await Listen(ws).serve()


@router.websocket("/api/v1/speak")
async def speak(ws: WebSocket) -> None:
    """Text to speech over a WebSocket (WS_API.md)."""
    await Speak(ws).serve()


class Float32ToPcm16:
    """pcm32f frames of any byte count -> pcm16 (the STT core takes 16-bit PCM)."""

    def __init__(self) -> None:
        self._carry = b""

    def convert(self, data: bytes) -> bytes:
        data = self._carry + data
        whole = len(data) - len(data) % 4
        self._carry = data[whole:]
        return float_to_pcm16(np.frombuffer(data[:whole], dtype="<f4"))


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
                encoding = choice(start, "encoding", ENCODINGS)
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
