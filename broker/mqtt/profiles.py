"""The MQTT topics of voice profiles: `profile/{site}/{rid}/start|audio|stop|cancel|delete`.

Creating a profile mirrors an STT session: `start` (JSON: name, transcript, language(s),
description, the clip's PCM format), the reference clip as `audio` messages of any byte
count, `stop` (optionally with the chunk and byte counts, to detect loss). `delete` (JSON
`{"name"}`) removes one. Results: `result/created`, `result/deleted` or `result/error`, or
the requester's v5 Response Topic. The work is `core.voices`; this module only maps topics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.errors import SessionError
from ..core.payloads import Stop, VoiceProfileRequest, parse_json, voice_name
from ..core.voices import VoiceCreateSession
from .link import Inbound
from .replies import ReplyTo, reply_to
from .sink import MqttSink
from .topics import Route

if TYPE_CHECKING:
    from .front import Bridge

Handler = Callable[[Route, Inbound], Awaitable[None]]
T = TypeVar("T")


class ProfileTopics:
    """The handlers of the profile topics, for `Bridge`'s routing table."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def handlers(self) -> dict[str, Handler]:
        return {"profile.start": self._start, "profile.audio": self._audio, "profile.stop": self._stop,
                "profile.cancel": self._cancel, "profile.delete": self._delete}

    async def _open(self, route: Route, msg: Inbound, parse: Callable[[dict[str, Any]], T],
                    open_session: Callable[[T, MqttSink], object]) -> None:
        """Parse a request (`parse`, errors counted here) and open its session (refusals are
        counted by the core); every error is answered on the request's reply topic."""
        bridge = self.bridge
        base = bridge.topics.profile_base(route.site, route.ident or "")
        reply = ReplyTo(base)
        try:
            reply = reply_to(base, msg, bridge.config.reply_prefix)
            request = parse(parse_json(msg.payload, bridge.config.max_control_bytes))
        except SessionError as err:
            bridge.core.count_error(err, backend="voice", site=route.site)
            await bridge.answer(reply, err)
            return
        try:
            open_session(request, MqttSink(bridge, reply, route.site, route.ident or ""))
        except SessionError as err:
            await bridge.answer(reply, err)

    async def _start(self, route: Route, msg: Inbound) -> None:
        core = self.bridge.core
        await self._open(route, msg, VoiceProfileRequest.parse, lambda request, sink: core.open_voice_create(
            request, sink, site=route.site, ident=route.ident or ""))

    async def _delete(self, route: Route, msg: Inbound) -> None:
        core = self.bridge.core
        await self._open(route, msg, lambda data: voice_name(data.get("name")),
                         lambda name, sink: core.open_voice_delete(name, sink, site=route.site,
                                                                   ident=route.ident or ""))

    def _session(self, route: Route) -> VoiceCreateSession | None:
        session = self.bridge.core.voice_at(route.site)
        if not isinstance(session, VoiceCreateSession) or session.ident != route.ident:
            self.bridge.metrics.dropped.labels("no_session").inc()
            return None
        return session

    async def _audio(self, route: Route, msg: Inbound) -> None:
        session = self._session(route)
        if session is not None:
            session.feed(msg.payload)

    async def _stop(self, route: Route, msg: Inbound) -> None:
        session = self._session(route)
        if session is None:
            return
        try:
            session.stop(Stop.parse(parse_json(msg.payload, self.bridge.config.max_control_bytes)))
        except SessionError as err:
            session.fail(err)

    async def _cancel(self, route: Route, msg: Inbound) -> None:
        session = self._session(route)
        if session is not None:
            session.cancel()
