"""The Wyoming events that create and delete voice profiles at run time.

Shaped like the `wyoming` package's own events (a dataclass with `is_type`, `event()` and
`from_event()`), so a Wyoming client (the bridge) can use them as it uses `Synthesize`:

    client -> voice-create {name, transcript, language, rate, width, channels, description?}
    client -> audio-chunk ... (the reference clip, any PCM format)
    client -> audio-stop
    server -> voice-created {name}            or  error {text, code}

    client -> voice-delete {name}
    server -> voice-deleted {name}            or  error {text, code}

`language` is one tag or a list of tags. Error codes: bad_request (missing or bad field,
name with path characters, clip too short or silent), invalid_format, too_large (clip
too long, too many profiles), voice_exists, unknown_voice, forbidden (edits turned off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wyoming.event import Event, Eventable

_CREATE = "voice-create"
_CREATED = "voice-created"
_DELETE = "voice-delete"
_DELETED = "voice-deleted"


@dataclass
class VoiceCreate(Eventable):
    """Start of a new profile; its reference clip follows as audio-chunk events, then audio-stop."""

    name: str
    transcript: str
    language: str | list[str]
    rate: int
    width: int
    channels: int
    description: str | None = None

    @staticmethod
    def is_type(event_type: str) -> bool:
        return event_type == _CREATE

    def event(self) -> Event:
        data: dict = {"name": self.name, "transcript": self.transcript, "language": self.language,
                      "rate": self.rate, "width": self.width, "channels": self.channels}
        if self.description is not None:
            data["description"] = self.description
        return Event(type=_CREATE, data=data)

    @staticmethod
    def from_event(event: Event) -> VoiceCreate:
        data = event.data or {}
        return VoiceCreate(name=data.get("name"), transcript=data.get("transcript"),  # type: ignore[arg-type]
                           language=data.get("language"), rate=data.get("rate"),  # type: ignore[arg-type]
                           width=data.get("width"), channels=data.get("channels"),  # type: ignore[arg-type]
                           description=data.get("description"))


@dataclass
class VoiceCreated(Eventable):
    name: str
    languages: list[str] = field(default_factory=list)

    @staticmethod
    def is_type(event_type: str) -> bool:
        return event_type == _CREATED

    def event(self) -> Event:
        return Event(type=_CREATED, data={"name": self.name, "languages": self.languages})

    @staticmethod
    def from_event(event: Event) -> VoiceCreated:
        data = event.data or {}
        return VoiceCreated(name=data["name"], languages=list(data.get("languages") or []))


@dataclass
class VoiceDelete(Eventable):
    name: str

    @staticmethod
    def is_type(event_type: str) -> bool:
        return event_type == _DELETE

    def event(self) -> Event:
        return Event(type=_DELETE, data={"name": self.name})

    @staticmethod
    def from_event(event: Event) -> VoiceDelete:
        return VoiceDelete(name=(event.data or {}).get("name"))  # type: ignore[arg-type]


@dataclass
class VoiceDeleted(Eventable):
    name: str

    @staticmethod
    def is_type(event_type: str) -> bool:
        return event_type == _DELETED

    def event(self) -> Event:
        return Event(type=_DELETED, data={"name": self.name})

    @staticmethod
    def from_event(event: Event) -> VoiceDeleted:
        return VoiceDeleted(name=(event.data or {}).get("name"))  # type: ignore[arg-type]


#: Key a TTS service that keeps voice profiles adds to its TtsProgram in `info` (Wyoming clients,
#: Home Assistant among them, skip keys they do not know): {"voices": [names], "editable": bool}.
#: A client (the bridge) sends voice-create / voice-delete only to services that carry it.
PROFILES_KEY = "voice_profiles"


@dataclass(frozen=True)
class ProfileSupport:
    """What `info` says about a service's voice profiles: their names, and whether
    voice-create / voice-delete are accepted (--no-voice-edits turns them off)."""

    voices: tuple[str, ...] = ()
    editable: bool = True


def mark_profiles(info: Event, support: ProfileSupport) -> Event:
    """`info` (an info event) with `support` on each of its TTS programs."""
    for program in (info.data or {}).get("tts") or []:
        program[PROFILES_KEY] = {"voices": list(support.voices), "editable": support.editable}
    return info


def profile_support(info: Event) -> ProfileSupport | None:
    """The voice profiles an info event announces, or None when the service keeps none."""
    for program in (info.data or {}).get("tts") or []:
        marker = program.get(PROFILES_KEY) if isinstance(program, dict) else None
        if isinstance(marker, dict):
            voices = marker.get("voices")
            names = tuple(v for v in voices if isinstance(v, str)) if isinstance(voices, list) else ()
            return ProfileSupport(names, marker.get("editable") is not False)
    return None
