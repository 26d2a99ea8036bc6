"""Conversation mode: a site's final transcript goes to the chat backend, its reply is spoken.

The bridge publishes `voice/chat/{site}/request`; the backend answers on
`.../response` (whole text) or streams `.../response/text` + `.../response/end`.
The reply is synthesized as TTS request `{sid}` of the same site, so the device
hears it on `voice/tts/{site}/{sid}/result/...`. One turn per site is pending at
a time; a newer utterance supersedes it.

It lives in the MQTT front, not the core: the chat backend is reached over MQTT topics
(request, response, streamed response), a turn is bound to a site's MQTT reply topics,
and only sites (MQTT devices) have a conversation mode; an HTTP or WebSocket client
talks to its chat backend itself and uses the core's STT and TTS directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Protocol

from voice_common.errors import MqttCode

from ..core.errors import SessionError
from ..core.tts import TtsSession
from .link import Inbound, MqttLink
from .replies import JSON, Replies, ReplyTo
from .topics import Topics

_LOGGER = logging.getLogger(__name__)


class TtsOpener(Protocol):
    async def open_tts(self, site: str, rid: str, reply: ReplyTo, options: dict, text: str | None) -> TtsSession | None:
        """Start a TTS session (None when refused; the refusal was already answered)."""


@dataclass(eq=False)
class Turn:
    site: str
    sid: str
    reply: ReplyTo
    tts: TtsSession | None = None
    timer: asyncio.Task | None = field(default=None, repr=False)


def parse_reply(payload: bytes) -> tuple[str | None, str]:
    """(sid or None, text) from a JSON object {"sid", "text"} or plain UTF-8 text."""
    text = payload.decode("utf-8", errors="strict")
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict):
            sid, body = data.get("sid"), data.get("text", "")
            if not isinstance(body, str) or (sid is not None and not isinstance(sid, str)):
                raise SessionError("chat reply needs a string 'text'", MqttCode.INVALID_REQUEST)
            return sid, body
    return None, text


class Conversations:
    def __init__(self, link: MqttLink, replies: Replies, topics: Topics, opener: TtsOpener, chat_timeout: float
                 ) -> None:
        self._link = link
        self._replies = replies
        self._topics = topics
        self._opener = opener
        self._chat_timeout = chat_timeout
        self._turns: dict[str, Turn] = {}

    async def request(self, site: str, sid: str, text: str, language: str | None) -> None:
        """Hand a final transcript to the chat backend and wait for its reply."""
        self._drop(site)
        turn = Turn(site, sid, ReplyTo(self._topics.tts_base(site, sid)))
        turn.timer = asyncio.ensure_future(self._expire(turn))
        self._turns[site] = turn
        props = self._link.properties(
            content_type=JSON, correlation=sid.encode(),
        )
        if props is not None:  # v5 backends can answer generically to the Response Topic
            props.ResponseTopic = f"{self._topics.prefix}/chat/{site}/response"
        body = json.dumps({"sid": sid, "text": text, "language": language}).encode()
        await self._link.publish(self._topics.chat_request(site), body, qos=1, properties=props)

    async def on_message(self, kind: str, site: str, msg: Inbound) -> None:
        """`chat.response`, `chat.text` or `chat.end` from the backend."""
        turn = self._turns.get(site)
        if turn is None:
            return
        sid, text = parse_reply(msg.payload) if kind != "chat.end" else (None, "")
        if sid is None and msg.correlation is not None:
            sid = msg.correlation.decode(errors="replace")
        if sid is not None and sid != turn.sid:
            return  # a reply to a superseded turn
        if kind == "chat.response":
            self._finish(turn)
            await self._opener.open_tts(site, turn.sid, turn.reply, {}, text)
            return
        if turn.tts is None:
            turn.tts = await self._opener.open_tts(site, turn.sid, turn.reply, {}, None)
            if turn.tts is None:
                self._finish(turn)
                return
            if turn.timer is not None:
                turn.timer.cancel()
        if kind == "chat.text":
            turn.tts.add_text(text)
        else:
            turn.tts.end()
            self._finish(turn)

    async def _expire(self, turn: Turn) -> None:
        await asyncio.sleep(self._chat_timeout)
        if self._turns.get(turn.site) is turn and turn.tts is None:
            del self._turns[turn.site]
            _LOGGER.info("site %s: the chat backend did not answer turn %s", turn.site, turn.sid)
            with contextlib.suppress(Exception):
                await self._replies.error(turn.reply, SessionError(
                    f"the chat backend did not answer within {self._chat_timeout:g} s", MqttCode.TIMEOUT))

    def _finish(self, turn: Turn) -> None:
        if self._turns.get(turn.site) is turn:
            del self._turns[turn.site]
        if turn.timer is not None and turn.timer is not asyncio.current_task():
            turn.timer.cancel()

    def _drop(self, site: str) -> None:
        turn = self._turns.get(site)
        if turn is not None:
            self._finish(turn)
            if turn.tts is not None:
                turn.tts.cancel()

    def close(self) -> None:
        for site in list(self._turns):
            self._drop(site)
