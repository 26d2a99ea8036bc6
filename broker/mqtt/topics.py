"""The topic tree: what the bridge subscribes to, and how a topic maps to a request.

Ids (site, session id, request id) are whole topic levels matching `ID_RE`, so
broker ACLs can confine a device to its own topics.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.payloads import ID_RE

#: Request kinds that open a session; with --group these subscriptions are shared,
#: everything that belongs to an open session is seen by every bridge of the group.
OPENING = ("stt.start", "tts.say", "tts.site_say", "tts.text_start", "profile.start", "profile.delete")

# (kind, pattern below the prefix); `{site}`/`{id}` are single levels.
_REQUESTS = (
    ("stt.start", "stt/{site}/{id}/start"),
    ("stt.audio", "stt/{site}/{id}/audio"),
    ("stt.stop", "stt/{site}/{id}/stop"),
    ("stt.cancel", "stt/{site}/{id}/cancel"),
    ("tts.site_say", "tts/{site}/say"),
    ("tts.say", "tts/{site}/{id}/say"),
    ("tts.text_start", "tts/{site}/{id}/text/start"),
    ("tts.text", "tts/{site}/{id}/text"),
    ("tts.text_end", "tts/{site}/{id}/text/end"),
    ("tts.cancel", "tts/{site}/{id}/cancel"),
    ("profile.start", "profile/{site}/{id}/start"),
    ("profile.audio", "profile/{site}/{id}/audio"),
    ("profile.stop", "profile/{site}/{id}/stop"),
    ("profile.cancel", "profile/{site}/{id}/cancel"),
    ("profile.delete", "profile/{site}/{id}/delete"),
    ("settings.set", "site/{site}/settings/set"),
    ("chat.response", "chat/{site}/response"),
    ("chat.text", "chat/{site}/response/text"),
    ("chat.end", "chat/{site}/response/end"),
)

#: Suffix of the fixed result topic for each result type.
RESULT_SUFFIX = {
    "partial": "result/partial",
    "final": "result/final",
    "error": "result/error",
    "audio-start": "result/start",
    "audio": "result/audio",
    "done": "result/done",
    "voice-created": "result/created",
    "voice-deleted": "result/deleted",
}


@dataclass(frozen=True)
class Route:
    kind: str
    site: str
    ident: str | None = None


class Topics:
    """Builds and parses the topics under one prefix."""

    def __init__(self, prefix: str = "voice", ha_prefix: str = "homeassistant") -> None:
        self.prefix = prefix
        self.ha_prefix = ha_prefix
        self.status = f"{prefix}/status"
        self.info = f"{prefix}/info"
        self.ha_status = f"{ha_prefix}/status"
        self._levels = prefix.count("/") + 1
        self._patterns = [(kind, pattern.split("/")) for kind, pattern in _REQUESTS]

    def subscriptions(self, group: str | None) -> list[str]:
        """Topic filters to subscribe to; opening requests shared when `group` is set."""
        filters = []
        for kind, pattern in _REQUESTS:
            topic = f"{self.prefix}/" + pattern.replace("{site}", "+").replace("{id}", "+")
            if group and kind in OPENING:
                topic = f"$share/{group}/{topic}"
            filters.append(topic)
        filters.append(self.ha_status)
        return filters

    def parse(self, topic: str) -> Route | str:
        """A Route, or the reason the topic is dropped ('unknown_topic' or 'bad_id')."""
        levels = topic.split("/")
        if "/".join(levels[: self._levels]) != self.prefix:
            return "unknown_topic"
        rest = levels[self._levels:]
        for kind, pattern in self._patterns:
            if len(pattern) != len(rest):
                continue
            ids: dict[str, str] = {}
            for want, got in zip(pattern, rest, strict=True):
                if want in ("{site}", "{id}"):
                    ids[want] = got
                elif want != got:
                    break
            else:
                if not all(ID_RE.match(value) for value in ids.values()):
                    return "bad_id"
                return Route(kind, ids["{site}"], ids.get("{id}"))
        return "unknown_topic"

    # Topics the bridge publishes to.
    def stt_base(self, site: str, sid: str) -> str:
        return f"{self.prefix}/stt/{site}/{sid}"

    def stt_event(self, site: str) -> str:
        return f"{self.prefix}/stt/{site}/event"

    def tts_base(self, site: str, rid: str) -> str:
        return f"{self.prefix}/tts/{site}/{rid}"

    def profile_base(self, site: str, rid: str) -> str:
        return f"{self.prefix}/profile/{site}/{rid}"

    def tts_site_say(self, site: str) -> str:
        return f"{self.prefix}/tts/{site}/say"

    def chat_request(self, site: str) -> str:
        return f"{self.prefix}/chat/{site}/request"

    def settings(self, site: str) -> str:
        return f"{self.prefix}/site/{site}/settings"

    def settings_error(self, site: str) -> str:
        return f"{self.prefix}/site/{site}/settings/error"

    def busy(self, site: str) -> str:
        return f"{self.prefix}/site/{site}/busy"

    def result(self, base: str, kind: str) -> str:
        return f"{base}/{RESULT_SUFFIX[kind]}"
