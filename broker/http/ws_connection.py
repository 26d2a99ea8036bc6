"""What `/api/v1/listen` and `/api/v1/speak` share: one WebSocket with its key, limits and messages.

A `WsConnection` accepts the socket, checks a Bearer key on the upgrade (or takes the
`authToken` of the first `start`, for browsers), holds one of the key's stream slots for
its whole life, and reads frames with bounds: a text frame is a JSON control message of
at most `max_control_bytes` plus room for the text of a `speak`, a binary frame at most
`--max-chunk-bytes`; a frame over its bound ends the connection with `too_large` (close
1009). Sends are serialised by a lock, since the session's task (through its sink) and
the reading loop both send. Errors go out as `{"type": "error", "code", "message",
"recoverable"}`; keys never reach a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from voice_common.errors import MqttCode

from ..core.errors import SessionError
from ..core.limits import KeyLimiter, retry_after_header
from ..core.payloads import parse_json
from .auth import authenticate, bearer_token
from .errors import ApiError, HttpOnlyCode
from .front import FrontState

_LOGGER = logging.getLogger(__name__)

#: Close codes: normal end, a policy refusal (key, limits, protocol), a frame too big.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009

#: Audio encodings a WebSocket may ask for.
ENCODINGS = ("pcm16", "pcm32f")


class Closing(Exception):
    """Raised to end the connection (its error, if any, is already sent)."""

    def __init__(self, code: int = CLOSE_NORMAL) -> None:
        super().__init__(code)
        self.code = code


class WsConnection:
    """One client's WebSocket: auth, limits, bounded reads, serialised sends."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.front: FrontState = ws.app.state.front
        self.config = self.front.config
        self.id = uuid.uuid4().hex[:16]
        self.limiter: KeyLimiter | None = None
        self.authed = False
        self._holds_stream = False
        self._send_lock = asyncio.Lock()
        self.text_limit = self.config.max_control_bytes + 4 * self.config.api_max_text_chars

    # -- sending -----------------------------------------------------------------
    async def send_json(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.send_text(json.dumps(message))

    async def send_bytes(self, data: bytes) -> None:
        async with self._send_lock:
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.send_bytes(data)

    async def error(self, code: str, message: str, recoverable: bool, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": str(code), "message": message, "recoverable": recoverable,
                              **extra})

    async def session_error(self, err: SessionError, recoverable: bool) -> None:
        await self.error(err.code, err.text, recoverable)

    # -- life --------------------------------------------------------------------
    async def serve(self) -> None:
        """Accept, run the endpoint's `main`, and always end cleanly (close, slot freed)."""
        await self.ws.accept()
        close_code = CLOSE_NORMAL
        try:
            token = bearer_token(self.ws.headers.get("authorization"))
            if token is not None or self.ws.app.state.check_key is None:
                await self.authorize(token)
            await self.send_json(self.ready_message())
            await self.main()
        except Closing as end:
            close_code = end.code
        except WebSocketDisconnect:
            pass
        finally:
            await self.cleanup()
            if self._holds_stream and self.limiter is not None:
                self.limiter.streams.release()
                self._holds_stream = False
            if self.ws.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close(close_code)

    async def authorize(self, token: str | None) -> None:
        """Check the key (auth on) and admit one request and one stream of it; raises Closing."""
        try:
            key = authenticate(self.ws.app.state.check_key, token)
        except ApiError as err:
            await self.error(err.code, err.text, False)
            raise Closing(CLOSE_POLICY) from None
        self.authed = True
        limiter = self.front.limiter(key)
        wait = limiter.admit_request()
        if wait is None:
            wait = limiter.admit_audio(0)  # a key in audio debt waits it out
        if wait is not None:
            await self.error(HttpOnlyCode.RATE_LIMITED, "this key is over its rate limit", False,
                             retryAfter=int(retry_after_header(wait)))
            raise Closing(CLOSE_POLICY)
        if not limiter.streams.try_acquire():
            await self.error(HttpOnlyCode.RATE_LIMITED, f"at most {limiter.streams.limit} streams at once for "
                             "this key", False)
            raise Closing(CLOSE_POLICY)
        self.limiter = limiter
        self._holds_stream = True

    async def receive(self, timeout: float | None) -> dict[str, Any] | bytes:
        """The next frame: a control message (dict) or audio (bytes); raises Closing on a
        frame over its bound or no frame for `timeout` seconds, WebSocketDisconnect when gone.
        A text frame that is not a JSON object with a string `type` is answered with a
        recoverable error and skipped."""
        while True:
            try:
                async with asyncio.timeout(timeout):
                    message = await self.ws.receive()
            except TimeoutError:
                await self.error(MqttCode.TIMEOUT, f"nothing received for {timeout:g} s", False)
                raise Closing(CLOSE_POLICY) from None
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            data = message.get("bytes")
            if data is not None:
                if len(data) > self.config.max_chunk_bytes:
                    await self.error(MqttCode.TOO_LARGE, f"binary frame larger than {self.config.max_chunk_bytes} "
                                     "bytes", False)
                    raise Closing(CLOSE_TOO_BIG)
                return data
            text = message.get("text") or ""
            raw = text.encode("utf-8", "surrogatepass")
            if len(raw) > self.text_limit:
                await self.error(MqttCode.TOO_LARGE, f"text frame larger than {self.text_limit} bytes", False)
                raise Closing(CLOSE_TOO_BIG)
            try:
                control = parse_json(raw, self.text_limit)
                if not isinstance(control.get("type"), str):
                    raise SessionError("a control message needs a string 'type'", MqttCode.INVALID_REQUEST)
            except SessionError as err:
                await self.session_error(err, True)
                continue
            return control

    async def start_auth(self, start: dict[str, Any]) -> None:
        """Auth from the first `start` (`authToken`) when the upgrade carried no key."""
        if self.authed:
            return
        token = start.get("authToken")
        await self.authorize(token if isinstance(token, str) else None)

    # -- per endpoint --------------------------------------------------------------
    def ready_message(self) -> dict[str, Any]:
        raise NotImplementedError

    async def main(self) -> None:
        raise NotImplementedError

    async def cleanup(self) -> None:
        """End the endpoint's session, if one is open (the client left, or the bridge stops)."""


def choice(data: dict, key: str, choices: tuple[str, ...]) -> str:
    """`data[key]` (default: the first choice), which must be one of `choices`."""
    value = data.get(key, choices[0])
    if value not in choices:
        raise SessionError(f"'{key}' must be one of {', '.join(choices)}", MqttCode.INVALID_REQUEST)
    return value


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
