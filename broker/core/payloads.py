"""Every request is validated here, once, whatever front it came through.

JSON control messages and `say` bodies, the STT request (`SttRequest`) and its `Stop`,
the TTS voice options (`Voice`, `parse_speed`), TTS text, per-site settings
(`SiteSettings`), and voice profiles (`VoiceProfileRequest`, `voice_name`). Each check
raises `SessionError` with the code the requester gets.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from wyoming.event import Event

from voice_common.audio import SPEECH_RATE, AudioFormatError, check_format
from voice_common.errors import MqttCode
from voice_common.language import LANGUAGE_TAG
from voice_common.voice import check_speed, voice_options

from ..config import MODES
from .errors import SessionError

#: Site names and request ids: one MQTT topic level each (broker ACLs confine a device to
#: its own topics), so every front takes the same names.
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_RE = re.compile(r"^[^\x00-\x1f]{1,128}$")
#: Audio formats accepted for STT (anything else: invalid_format); `voice/info` lists them.
RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
WIDTHS = (2, 4)
CHANNELS = (1, 2)
#: Per-site settings a requester may set.
SETTING_FIELDS = ("mode", "voice", "speaker", "speed", "language")


def parse_json(payload: bytes, limit: int) -> dict[str, Any]:
    """A JSON object control message (empty payload: {})."""
    if len(payload) > limit:
        raise SessionError(f"control message larger than {limit} bytes", MqttCode.TOO_LARGE)
    if not payload.strip():
        return {}
    try:
        data = json.loads(payload)
    except ValueError:
        raise SessionError("payload is not valid JSON", MqttCode.INVALID_REQUEST) from None
    if not isinstance(data, dict):
        raise SessionError("payload must be a JSON object", MqttCode.INVALID_REQUEST)
    return data


def parse_say(payload: bytes, limit: int) -> dict[str, Any]:
    """`say` payload: a JSON object with "text", or the text itself."""
    if len(payload) > limit:
        raise SessionError(f"message larger than {limit} bytes", MqttCode.TOO_LARGE)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SessionError("text is not UTF-8", MqttCode.INVALID_REQUEST) from None
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(text)
            if isinstance(data, dict):
                return data
    return {"text": text}


def check_site(site: str) -> str:
    """A site name as MQTT topics carry it (`ID_RE`); raises SessionError('invalid_request')."""
    if not ID_RE.match(site):
        raise SessionError("a site name must match [A-Za-z0-9_-]{1,64}", MqttCode.INVALID_REQUEST)
    return site


def check_text(text: str, max_chars: int) -> str:
    """The whole text of a TTS request: not empty, at most `max_chars` characters."""
    if not text.strip():
        raise SessionError("no text to speak", MqttCode.INVALID_REQUEST)
    if len(text) > max_chars:
        raise SessionError(f"text longer than {max_chars} characters", MqttCode.TOO_LARGE)
    return text


def optional_str(data: dict, key: str, pattern: re.Pattern[str]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise SessionError(f"'{key}' is not valid", MqttCode.INVALID_REQUEST)
    return value


@dataclass(frozen=True)
class SttRequest:
    rate: int = SPEECH_RATE
    width: int = 2
    channels: int = 1
    language: str | None = None
    partials: bool = False
    model: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any], default_language: str | None = None) -> SttRequest:
        try:
            rate, width, channels = check_format(
                data.get("rate", cls.rate), data.get("width", cls.width), data.get("channels", cls.channels)
            )
        except AudioFormatError as err:
            raise SessionError(str(err), MqttCode.INVALID_FORMAT) from None
        if rate not in RATES or width not in WIDTHS or channels not in CHANNELS:
            raise SessionError(
                f"format {rate} Hz/{width} B/{channels} ch is not accepted (rates {list(RATES)}, "
                f"widths {list(WIDTHS)}, channels {list(CHANNELS)})",
                MqttCode.INVALID_FORMAT,
            )
        partials = data.get("partials", False)
        if not isinstance(partials, bool):
            raise SessionError("'partials' must be true or false", MqttCode.INVALID_REQUEST)
        language = optional_str(data, "language", LANGUAGE_TAG) or default_language
        return cls(rate, width, channels, language, partials, optional_str(data, "model", NAME_RE))


@dataclass(frozen=True)
class Stop:
    """The end of an STT stream, with the chunk and byte counts the requester sent (if told)."""

    chunks: int | None = None
    nbytes: int | None = None
    at: float = 0.0

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Stop:
        values = []
        for key in ("chunks", "bytes"):
            value = data.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise SessionError(f"'{key}' in stop must be a non-negative integer", MqttCode.INVALID_REQUEST)
            values.append(value)
        return cls(values[0], values[1], time.monotonic())

    @classmethod
    def now(cls) -> Stop:
        """A stop without counts (a front whose transport loses nothing)."""
        return cls(None, None, time.monotonic())


def parse_speed(value: Any) -> float | None:
    """A request's or a site's `speed`, checked here against the range the TTS service takes,
    so a speed it would refuse is an `invalid_request` before any service is asked."""
    if value is None:
        return None
    try:
        return check_speed(value)
    except ValueError as err:
        raise SessionError(str(err), MqttCode.INVALID_REQUEST) from None


@dataclass(frozen=True)
class Voice:
    """Voice options of a request; unset fields fall back to the site's settings."""

    name: str | None = None
    speaker: str | None = None
    language: str | None = None
    speed: float | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Voice:
        voice = data.get("voice")
        if isinstance(voice, dict):  # {"voice": {"name": ..., "speaker": ...}}
            nested = {"voice": voice.get("name"), "speaker": voice.get("speaker")}
        elif voice is None or isinstance(voice, str):
            nested = {"voice": voice, "speaker": data.get("speaker")}
        else:
            raise SessionError("'voice' must be a name or an object", MqttCode.INVALID_REQUEST)
        return cls(
            optional_str(nested, "voice", NAME_RE), optional_str(nested, "speaker", NAME_RE),
            optional_str(data, "language", LANGUAGE_TAG), parse_speed(data.get("speed")),
        )

    def over(self, base: Voice) -> Voice:
        """These options, with `base` filling the unset ones."""
        return Voice(
            name=self.name if self.name is not None else base.name,
            speaker=self.speaker if self.speaker is not None else base.speaker,
            language=self.language if self.language is not None else base.language,
            speed=self.speed if self.speed is not None else base.speed,
        )

    def apply(self, event: Event) -> Event:
        """`event` (synthesize or synthesize-start) carrying these options, every one that is set."""
        event.data.update(voice_options(self.name, self.language, self.speaker, self.speed))
        return event


@dataclass(frozen=True)
class SiteSettings:
    mode: str | None = None
    voice: str | None = None
    speaker: str | None = None
    speed: float | None = None
    language: str | None = None

    def merged(self, update: dict[str, Any]) -> SiteSettings:
        """These settings with `update` applied (null deletes a key); raises SessionError('invalid_request')."""
        unknown = sorted(set(update) - set(SETTING_FIELDS))
        if unknown:
            raise SessionError(f"unknown settings: {', '.join(unknown)}", MqttCode.INVALID_REQUEST)
        mode = update.get("mode", self.mode)
        if mode is not None and mode not in MODES:
            raise SessionError(f"'mode' must be one of {', '.join(MODES)}", MqttCode.INVALID_REQUEST)
        values = {**asdict(self), **update}
        return SiteSettings(
            mode=mode,
            voice=optional_str(values, "voice", NAME_RE),
            speaker=optional_str(values, "speaker", NAME_RE),
            speed=parse_speed(values.get("speed")),
            language=optional_str(values, "language", LANGUAGE_TAG),
        )

    def public(self, default_mode: str) -> dict[str, Any]:
        """The published settings: every field, the mode resolved."""
        return {**asdict(replace(self, mode=self.mode or default_mode))}

    def voice_defaults(self) -> Voice:
        return Voice(self.voice, self.speaker, self.language, self.speed)


#: A voice profile's name: letters, digits, '_', '-', '.', not starting with '.' or '-', no
#: '..': a folder name on the TTS service that cannot spell a path (the service checks again).
VOICE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
#: Reference clips of a voice profile: seconds, and the text beside them (the service's bounds).
MIN_CLIP_SECONDS = 3.0
MAX_CLIP_SECONDS = 30.0
MAX_TRANSCRIPT_CHARS = 1000
MAX_DESCRIPTION_CHARS = 300
MAX_VOICE_LANGUAGES = 8


def voice_name(value: Any) -> str:
    """A voice profile's name, or SessionError(invalid_request): no path can be spelled with it."""
    if not isinstance(value, str) or not value:
        raise SessionError("a voice profile needs a 'name'", MqttCode.INVALID_REQUEST)
    if not VOICE_NAME_RE.match(value) or ".." in value:
        raise SessionError(f"voice name {value[:80]!r} is not allowed (1-64 letters, digits, '_', '-', '.'; "
                           "not starting with '.' or '-')", MqttCode.INVALID_REQUEST)
    return value


def _languages(data: dict[str, Any]) -> tuple[str, ...]:
    value = data.get("languages", data.get("language"))
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise SessionError("a voice profile needs its 'language' (e.g. en_US, or a list)", MqttCode.INVALID_REQUEST)
    if len(values) > MAX_VOICE_LANGUAGES:
        raise SessionError(f"at most {MAX_VOICE_LANGUAGES} languages", MqttCode.INVALID_REQUEST)
    for tag in values:
        if not isinstance(tag, str) or not LANGUAGE_TAG.match(tag):
            raise SessionError(f"language {str(tag)[:20]!r} is not a language tag (e.g. en_US)",
                               MqttCode.INVALID_REQUEST)
    return tuple(values)


@dataclass(frozen=True)
class VoiceProfileRequest:
    """A new voice profile: its text fields and the PCM format its reference clip arrives in."""

    name: str
    transcript: str
    languages: tuple[str, ...]
    description: str | None = None
    rate: int = 24000
    width: int = 2
    channels: int = 1

    @classmethod
    def parse(cls, data: dict[str, Any]) -> VoiceProfileRequest:
        name = voice_name(data.get("name"))
        transcript = data.get("transcript")
        if not isinstance(transcript, str) or not transcript.strip():
            raise SessionError("a voice profile needs the 'transcript' of its reference clip",
                               MqttCode.INVALID_REQUEST)
        if len(transcript) > MAX_TRANSCRIPT_CHARS:
            raise SessionError(f"transcript longer than {MAX_TRANSCRIPT_CHARS} characters", MqttCode.TOO_LARGE)
        description = data.get("description")
        if description is not None and (not isinstance(description, str)
                                        or len(description) > MAX_DESCRIPTION_CHARS):
            raise SessionError(f"'description' must be text of at most {MAX_DESCRIPTION_CHARS} characters",
                               MqttCode.INVALID_REQUEST)
        fmt = SttRequest.parse({  # the formats STT accepts, checked the same way
            key: data.get(key, default) for key, default in (("rate", cls.rate), ("width", cls.width),
                                                             ("channels", cls.channels))})
        return cls(name, transcript.strip(), _languages(data), description or None,
                   fmt.rate, fmt.width, fmt.channels)

    @property
    def frame(self) -> int:
        return self.width * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.frame

    @property
    def max_bytes(self) -> int:
        """The longest clip accepted, in bytes of its format (whole frames)."""
        return int(MAX_CLIP_SECONDS * self.rate) * self.frame

    def check_clip(self, nbytes: int) -> None:
        """A whole clip: whole frames, MIN_CLIP_SECONDS to MAX_CLIP_SECONDS long."""
        if nbytes % self.frame:
            raise SessionError(f"{nbytes} bytes of audio are not a whole number of frames "
                               f"(width x channels = {self.frame} bytes)", MqttCode.INVALID_FORMAT)
        seconds = nbytes / self.bytes_per_second
        if seconds < MIN_CLIP_SECONDS:
            raise SessionError(f"reference clip of {seconds:.1f} s is too short (at least {MIN_CLIP_SECONDS:g} s)",
                               MqttCode.INVALID_REQUEST)
        if nbytes > self.max_bytes:
            raise SessionError(f"reference clip longer than {MAX_CLIP_SECONDS:g} s", MqttCode.TOO_LARGE)


def profile_limits() -> dict[str, Any]:
    """The bounds of a new voice profile, as `voice/info` publishes them."""
    return {"min_seconds": MIN_CLIP_SECONDS, "max_seconds": MAX_CLIP_SECONDS, "rates": list(RATES),
            "widths": list(WIDTHS), "channels": list(CHANNELS), "max_transcript_chars": MAX_TRANSCRIPT_CHARS,
            "max_description_chars": MAX_DESCRIPTION_CHARS, "name": VOICE_NAME_RE.pattern}
