"""`MqttSink`: a session's typed results rendered as the MQTT result payloads of docs/mqtt.md.

One sink per request, bound to its `ReplyTo`. Results go out as before the core split:
`partial`/`final`/`error` JSON for STT (a final also goes to the site's transcript event
and, in conversation mode, to the chat backend), `audio-start`, raw PCM `audio` pieces
(numbered by `seq`) and `done` for TTS, `created` / `deleted` for voice profiles. While
the link is down a result cannot go out: an error result is kept for after the reconnect;
any other ends the session, and its `interrupted` error is kept instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiomqtt

from voice_common.errors import MqttCode

from ..core.errors import SessionError
from ..core.results import (
    Audio,
    AudioFormat,
    Done,
    Failure,
    Final,
    Partial,
    ProfileDeleted,
    ProfileSaved,
    Refusal,
    Result,
)
from .replies import ReplyTo, pcm_type

if TYPE_CHECKING:
    from .front import Bridge

#: The error kept for a request whose results could not be published.
LINK_LOST = "the bridge lost its MQTT connection during the request"


class MqttSink:
    def __init__(self, front: Bridge, reply: ReplyTo, site: str, ident: str) -> None:
        self.front = front
        self.reply = reply
        self.site = site
        self.ident = ident
        #: The link failed under this request: its `interrupted` error is already kept.
        self.cut = False
        self._content_type = ""
        self._seq = 0

    async def send(self, result: Result) -> None:
        if self.cut:
            return
        if isinstance(result, Failure):
            await self.front.answer(self.reply, result.error())
            return
        try:
            await self._publish(result)
        except aiomqtt.MqttError:
            self.cut = True
            self.front.metrics.errors.labels("interrupted").inc()
            self.front.keep_error(self.reply, SessionError(LINK_LOST, MqttCode.INTERRUPTED))
            raise

    async def _publish(self, result: Result) -> None:
        replies = self.front.replies
        if isinstance(result, Partial):
            await replies.send(self.reply, "partial", {"text": result.text, "seq": result.seq}, qos=0)
        elif isinstance(result, Final):
            final: dict = {"text": result.text, "language": result.language,
                           "audio_ms": result.audio_ms, "latency_ms": result.latency_ms}
            if result.lost_chunks:
                final["lost_chunks"] = result.lost_chunks
            await replies.send(self.reply, "final", final)
            await self.front.transcribed(self.site, self.ident, result)
        elif isinstance(result, AudioFormat):
            self._content_type = pcm_type(result.rate, result.width, result.channels)
            await replies.send(self.reply, "audio-start", {
                "rate": result.rate, "width": result.width, "channels": result.channels, "voice": result.voice})
        elif isinstance(result, Audio):
            self._seq += 1
            await replies.send(self.reply, "audio", result.data, content_type=self._content_type, seq=self._seq,
                               qos=0)
        elif isinstance(result, Done):
            await replies.send(self.reply, "done", {
                "chunks": result.chunks, "bytes": result.bytes,
                "audio_ms": result.audio_ms, "latency_ms": result.latency_ms})
        elif isinstance(result, ProfileSaved):
            await replies.send(self.reply, "voice-created", {
                "name": result.name, "languages": list(result.languages), "services": list(result.services),
                "failed": _refusals(result.failed), "audio_ms": result.audio_ms})
        elif isinstance(result, ProfileDeleted):
            await replies.send(self.reply, "voice-deleted", {
                "name": result.name, "services": list(result.services), "failed": _refusals(result.failed)})


def _refusals(refusals: tuple[Refusal, ...]) -> list[dict[str, str]]:
    return [{"service": r.service, "code": r.code, "message": r.text} for r in refusals]
