"""The MQTT front: routes each MQTT request to a core call, and the results back to MQTT.

It parses topics and payloads (checked by `core.payloads`), opens sessions through `Core`
(which enforces the caps) with an `MqttSink` for their results, and feeds them. MQTT-only
concerns stay here: reply topics and v5 properties, `voice/info`, settings and busy
topics, Home Assistant discovery, conversations, and errors kept during an outage: when
the link drops, every MQTT session is interrupted and its error published once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiomqtt

from voice_common import __version__
from voice_common.errors import MqttCode

from ..config import MODES, BridgeConfig
from ..core.core import Core
from ..core.errors import SessionError
from ..core.payloads import CHANNELS, RATES, WIDTHS, Stop, SttRequest, Voice, parse_json, parse_say, profile_limits
from ..core.results import Final
from ..core.stt import SttSession
from ..core.tts import TtsSession
from .chat import Conversations
from .hass import discovery_messages
from .link import Inbound, MqttLink
from .profiles import ProfileTopics
from .replies import JSON, Replies, ReplyTo, reply_to
from .sink import LINK_LOST, MqttSink
from .topics import ID_RE, Route, Topics

_LOGGER = logging.getLogger(__name__)

MAX_PENDING_ERRORS = 1024


class Bridge:
    """Implements `LinkHandler` for the MQTT link."""

    def __init__(self, config: BridgeConfig, link: MqttLink, core: Core) -> None:
        self.config = config
        self.link = link
        self.core = core
        self.store = core.store
        self.metrics = core.metrics
        self.topics = Topics(config.prefix, config.ha_prefix)
        self.replies = Replies(link, self.topics)
        core.site_watchers.append(self._publish_busy)
        core.settings_watchers.append(self._settings_changed)
        self.conversations = Conversations(link, self.replies, self.topics, self, config.chat_timeout)
        self._pending: deque[tuple[ReplyTo, SessionError]] = deque(maxlen=MAX_PENDING_ERRORS)
        self._handlers: dict[str, Callable[[Route, Inbound], Awaitable[None]]] = {
            "stt.start": self._stt_start, "stt.audio": self._stt_audio, "stt.stop": self._stt_stop,
            "stt.cancel": self._stt_cancel, "tts.site_say": self._tts_say, "tts.say": self._tts_say,
            "tts.text_start": self._tts_text_start, "tts.text": self._tts_text,
            "tts.text_end": self._tts_text_end, "tts.cancel": self._tts_cancel,
            "settings.set": self._settings_set, "chat.response": self._chat, "chat.text": self._chat,
            "chat.end": self._chat, **ProfileTopics(self).handlers(),
        }

    # -- LinkHandler --------------------------------------------------------
    async def on_connect(self) -> None:
        while self._pending:
            reply, err = self._pending.popleft()
            await self.replies.error(reply, err)
        await self.publish_info()
        for site in self.sites():
            await self._publish_settings(site)
        await self.publish_discovery()

    def on_disconnect(self) -> None:
        for session in self.core.sessions():
            if isinstance(session.sink, MqttSink) and not session.sink.cut:
                self.core.interrupt(session, LINK_LOST)
        self.conversations.close()

    async def on_message(self, msg: Inbound) -> None:
        if msg.topic == self.topics.ha_status:
            if msg.payload.strip().lower() == b"online":
                await self.publish_discovery()
            return
        route = self.topics.parse(msg.topic)
        if isinstance(route, str):
            self.metrics.dropped.labels(route).inc()
            return
        if msg.retain:
            self.metrics.dropped.labels("retained").inc()
            return
        self.metrics.messages.labels(route.kind).inc()
        await self._handlers[route.kind](route, msg)

    # -- publishing ----------------------------------------------------------
    def sites(self) -> list[str]:
        """The sites announced to Home Assistant: --sites and those with stored settings."""
        return self.core.sites()

    async def publish_info(self) -> None:
        config = self.config
        info = {
            "api": 1, "version": __version__, "mqtt_protocol": "5" if self.link.v5 else "3.1.1",
            "services": [s.summary() for s in self.core.pool.services],
            "stt": {"rates": list(RATES), "widths": list(WIDTHS), "channels": list(CHANNELS),
                    "max_audio_seconds": config.max_audio_seconds, "max_chunk_bytes": config.max_chunk_bytes},
            "tts": {"max_text_chars": config.max_text_chars, "audio_chunk_bytes": config.audio_chunk_bytes},
            "profiles": profile_limits(),
            "limits": {"max_sessions": config.max_sessions, "idle_timeout": config.idle_timeout,
                       "max_control_bytes": config.max_control_bytes},
            "modes": list(MODES), "default_mode": config.default_mode,
            "reply_prefixes": list(config.reply_prefix), "group": config.group,
        }
        await self.link.publish(self.topics.info, json.dumps(info).encode(), qos=1, retain=True,
                                properties=self.link.properties(content_type=JSON))

    async def watch_services(self) -> None:
        """Republish `voice/info` whenever services come, go, or change health."""
        pool = self.core.pool
        while True:
            await pool.changed.wait()
            await asyncio.sleep(0.2)  # let a burst of changes settle
            pool.changed.clear()
            with contextlib.suppress(aiomqtt.MqttError):
                await self.publish_info()

    async def publish_discovery(self, sites: list[str] | None = None) -> None:
        """Home Assistant discovery configs (if enabled), then each site's busy state."""
        for site in sites if sites is not None else self.sites():
            if self.config.ha_discovery:
                for topic, payload in discovery_messages(self.topics, site):
                    await self.link.publish(topic, payload, qos=1)
            await self._publish_busy(site)

    async def _publish_settings(self, site: str) -> None:
        body = json.dumps(self.store.get(site).public(self.config.default_mode)).encode()
        await self.link.publish(self.topics.settings(site), body, qos=1, retain=True,
                                properties=self.link.properties(content_type=JSON))

    async def _publish_busy(self, site: str) -> None:
        """ON/OFF on `voice/site/{site}/busy`.

        Retained for the sites announced to Home Assistant (`--sites` or stored settings,
        so at most --max-sites + the configured ones): HA subscribes to the state topic
        only after it has processed the config, so a state sent along with the config is
        missed and the binary_sensor stays `unknown`; a retained one reaches it on
        subscribing, after every HA restart too. Other sites get it unretained, so ids
        made up by clients leave nothing behind on the broker.
        """
        state = b"ON" if self.core.busy(site) else b"OFF"
        known = site in self.sites()
        with contextlib.suppress(aiomqtt.MqttError):
            await self.link.publish(self.topics.busy(site), state, qos=1 if known else 0, retain=known)

    # -- sessions --------------------------------------------------------------
    def mode(self, site: str) -> str:
        return self.core.mode(site)

    def keep_error(self, reply: ReplyTo, err: SessionError) -> None:
        """Keep an error result for after the reconnect."""
        self._pending.append((reply, err))

    async def answer(self, reply: ReplyTo, err: SessionError) -> None:
        """Publish an error result, or keep it for after the reconnect."""
        try:
            await self.replies.error(reply, err)
        except aiomqtt.MqttError:
            self.keep_error(reply, err)

    async def transcribed(self, site: str, sid: str, result: Final) -> None:
        """After a final: the site's transcript event, and in conversation mode the chat request."""
        event = {"event_type": "transcript", "text": result.text, "sid": sid}
        await self.link.publish(self.topics.stt_event(site), json.dumps(event).encode(), qos=1,
                                properties=self.link.properties(content_type=JSON))
        if self.mode(site) == "conversation" and result.text.strip():
            await self.conversations.request(site, sid, result.text, result.language)

    def _reply(self, base: str, msg: Inbound) -> ReplyTo:
        return reply_to(base, msg, self.config.reply_prefix)

    # -- STT -------------------------------------------------------------------
    async def _stt_start(self, route: Route, msg: Inbound) -> None:
        base = self.topics.stt_base(route.site, route.ident or "")
        reply = ReplyTo(base)
        try:
            reply = self._reply(base, msg)
            data = parse_json(msg.payload, self.config.max_control_bytes)
            request = SttRequest.parse(data)
        except SessionError as err:
            self.core.count_error(err, backend="stt", site=route.site)
            await self.answer(reply, err)
            return
        ident = route.ident or ""
        try:
            self.core.open_stt(request, MqttSink(self, reply, route.site, ident), site=route.site, ident=ident)
        except SessionError as err:  # counted by the core
            await self.answer(reply, err)

    def _stt_session(self, route: Route) -> SttSession | None:
        session = self.core.stt_at(route.site)
        if session is None or session.ident != route.ident:
            self.metrics.dropped.labels("no_session").inc()
            return None
        return session

    async def _stt_audio(self, route: Route, msg: Inbound) -> None:
        session = self._stt_session(route)
        if session is not None:
            session.feed(msg.payload)

    async def _stt_stop(self, route: Route, msg: Inbound) -> None:
        session = self._stt_session(route)
        if session is None:
            return
        try:
            session.stop(Stop.parse(parse_json(msg.payload, self.config.max_control_bytes)))
        except SessionError as err:
            session.fail(err)

    async def _stt_cancel(self, route: Route, msg: Inbound) -> None:
        session = self._stt_session(route)
        if session is not None:
            session.cancel()

    # -- TTS -------------------------------------------------------------------
    async def open_tts(self, site: str, rid: str, reply: ReplyTo, options: dict[str, Any],
                       text: str | None) -> TtsSession | None:
        """Start a TTS session; on refusal answer the error and return None."""
        try:
            voice = Voice.parse(options)
        except SessionError as err:
            self.core.count_error(err, backend="tts", site=site)
            await self.answer(reply, err)
            return None
        try:
            return self.core.open_tts(voice, MqttSink(self, reply, site, rid), text=text, site=site, ident=rid,
                                      deadline=reply.deadline)
        except SessionError as err:  # counted by the core
            await self.answer(reply, err)
            return None

    async def _open_tts_request(self, route: Route, msg: Inbound, rid: str | None, streaming: bool) -> None:
        reply = ReplyTo(self.topics.tts_base(route.site, rid or uuid.uuid4().hex[:16]))
        try:
            if streaming:
                data = parse_json(msg.payload, self.config.max_control_bytes)
            else:
                data = parse_say(msg.payload, self.config.max_control_bytes + 4 * self.config.max_text_chars)
            if rid is None:  # site-level say: the id may come in the payload
                given = data.get("id")
                if given is not None:
                    if not isinstance(given, str) or not ID_RE.match(given):
                        raise SessionError("'id' must match [A-Za-z0-9_-]{1,64}", MqttCode.INVALID_REQUEST)
                    rid = given
                else:
                    rid = reply.base.rsplit("/", 1)[1]
            reply = self._reply(self.topics.tts_base(route.site, rid), msg)
            text = None if streaming else data.get("text")
            if not streaming and not isinstance(text, str):
                raise SessionError("'text' must be a string", MqttCode.INVALID_REQUEST)
        except SessionError as err:
            self.core.count_error(err, backend="tts", site=route.site)
            await self.answer(reply, err)
            return
        await self.open_tts(route.site, rid, reply, data, text)

    async def _tts_say(self, route: Route, msg: Inbound) -> None:
        await self._open_tts_request(route, msg, route.ident, streaming=False)

    async def _tts_text_start(self, route: Route, msg: Inbound) -> None:
        await self._open_tts_request(route, msg, route.ident, streaming=True)

    def _tts_session(self, route: Route) -> TtsSession | None:
        session = self.core.tts_at(route.site)
        if session is None or session.ident != route.ident:
            return None
        return session

    async def _tts_text(self, route: Route, msg: Inbound) -> None:
        try:
            text = msg.payload.decode("utf-8")
        except UnicodeDecodeError:
            self.metrics.dropped.labels("not_utf8").inc()
            return
        session = self._tts_session(route)
        if session is None and not self.config.group:  # the first chunk opens the stream
            await self._open_tts_request(route, replace(msg, payload=b""), route.ident, streaming=True)
            session = self._tts_session(route)
        if session is None:
            self.metrics.dropped.labels("no_session").inc()
            return
        session.add_text(text)

    async def _tts_text_end(self, route: Route, msg: Inbound) -> None:
        session = self._tts_session(route)
        if session is not None:
            session.end()

    async def _tts_cancel(self, route: Route, msg: Inbound) -> None:
        session = self._tts_session(route)
        if session is not None:
            session.cancel()

    # -- settings and chat -------------------------------------------------------
    async def _settings_set(self, route: Route, msg: Inbound) -> None:
        site = route.site
        try:
            update = parse_json(msg.payload, self.config.max_control_bytes)
        except SessionError as err:
            self.core.count_error(err, backend="settings", site=site)
            await self._settings_error(site, err)
            return
        try:
            await self.core.set_site(site, update)  # published by _settings_changed
        except SessionError as err:  # counted by the core
            await self._settings_error(site, err)

    async def _settings_error(self, site: str, err: SessionError) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await self.link.publish(self.topics.settings_error(site), json.dumps(err.payload()).encode(),
                                    qos=1, properties=self.link.properties(content_type=JSON))

    async def _settings_changed(self, site: str, known: bool) -> None:
        """After any front changed a site's settings: publish them retained (and announce a new
        site). Without a link they go out on the next connect (`on_connect`)."""
        if not self.link.connected:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await self._publish_settings(site)
            if not known:
                await self.publish_discovery([site])

    async def _chat(self, route: Route, msg: Inbound) -> None:
        try:
            await self.conversations.on_message(route.kind, route.site, msg)
        except (SessionError, ValueError):
            self.metrics.dropped.labels("bad_chat_reply").inc()

    async def close(self) -> None:
        """Stop conversations; the sessions are ended by `Core.close` (their errors go out
        while the link is still up)."""
        self.conversations.close()
