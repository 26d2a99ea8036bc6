"""Creating and deleting voice profiles over Wyoming (events in voice_common/voice_events.py).

One `VoiceEditor` per connection. `voice-create` opens an upload: the reference clip
follows as audio-chunk events in the declared format (bounded: a clip longer than the
profile limit is refused at the chunk that passes it, not at the end) and audio-stop
closes it; the profile is then checked and written in a thread (conversion, silence
check, atomic rename), and the reply is `voice-created`. `voice-delete` removes a profile
and its cached prompts. Every refusal is a ProtocolError: the connection sends `error`
and closes, and nothing is saved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event

from voice_common.audio import AudioFormatError, check_format
from voice_common.errors import WyomingCode
from voice_common.protocol import ProtocolError
from voice_common.voice_events import VoiceCreate, VoiceCreated, VoiceDelete, VoiceDeleted

from .voices import ProfileError, PromptCache, VoiceStore
from .voices.profiles import MAX_SECONDS, check_name, check_text

_LOGGER = logging.getLogger(__name__)


class _Upload:
    def __init__(self, request: VoiceCreate) -> None:
        try:
            self.rate, self.width, self.channels = check_format(request.rate, request.width, request.channels)
        except AudioFormatError as err:
            raise ProtocolError(f"voice-create: {err}", WyomingCode.INVALID_FORMAT) from err
        self.request = request
        self.max_bytes = int((MAX_SECONDS + 0.5) * self.rate) * self.width * self.channels
        self.audio = bytearray()

    def add(self, event: Event) -> None:
        chunk = AudioChunk.from_event(event)
        if (chunk.rate, chunk.width, chunk.channels) != (self.rate, self.width, self.channels):
            raise ProtocolError("reference audio format differs from the one voice-create declared",
                                WyomingCode.INVALID_FORMAT)
        self.audio += chunk.audio or b""
        if len(self.audio) > self.max_bytes:
            raise ProtocolError(f"reference clip longer than {MAX_SECONDS:g} s", WyomingCode.TOO_LARGE)


class VoiceEditor:
    def __init__(self, store: VoiceStore | None, prompts: PromptCache | None, enabled: bool,
                 changed: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._prompts = prompts
        self._enabled = enabled
        self._changed = changed
        self._upload: _Upload | None = None

    @property
    def uploading(self) -> bool:
        return self._upload is not None

    async def handle(self, event: Event) -> Event | None:
        """The reply to `event` when it is part of a voice edit, else None (not ours).
        Audio events are ours only during an upload (their reply, until audio-stop, is none)."""
        if VoiceCreate.is_type(event.type):
            self._check_allowed()
            if self._upload is not None:
                raise ProtocolError("voice-create while another upload is open", WyomingCode.BAD_REQUEST)
            request = VoiceCreate.from_event(event)
            try:  # refuse a bad name, transcript or language before any audio is read
                check_name(request.name)
                check_text(request.transcript, request.language, request.description)
            except ProfileError as err:
                raise _wire(err) from err
            self._upload = _Upload(request)
            return None
        if self._upload is not None:
            if AudioStart.is_type(event.type):
                return None
            if AudioChunk.is_type(event.type):
                self._upload.add(event)
                return None
            if AudioStop.is_type(event.type):
                upload, self._upload = self._upload, None
                return await self._create(upload)
            raise ProtocolError(f"{event.type} during a voice upload (expected audio-chunk or audio-stop)",
                                WyomingCode.BAD_REQUEST)
        if VoiceDelete.is_type(event.type):
            self._check_allowed()
            return await self._delete(VoiceDelete.from_event(event).name)
        return None

    def _check_allowed(self) -> None:
        if self._store is None:
            raise ProtocolError("no backend of this server uses voice profiles", WyomingCode.FORBIDDEN)
        if not self._enabled:
            raise ProtocolError("voice edits are turned off on this server (--no-voice-edits)",
                                WyomingCode.FORBIDDEN)

    async def _create(self, upload: _Upload) -> Event:
        assert self._store is not None
        req = upload.request
        try:
            profile = await asyncio.to_thread(
                self._store.create, req.name, req.transcript, req.language, req.description,
                bytes(upload.audio), upload.rate, upload.width, upload.channels)
        except ProfileError as err:
            raise _wire(err) from err
        self._changed()
        return VoiceCreated(profile.name, list(profile.languages)).event()

    async def _delete(self, name: object) -> Event:
        assert self._store is not None
        try:
            await asyncio.to_thread(self._store.delete, name)  # type: ignore[arg-type]
        except ProfileError as err:
            raise _wire(err) from err
        if self._prompts is not None:
            self._prompts.forget(str(name))
        self._changed()
        return VoiceDeleted(str(name)).event()


def _wire(err: ProfileError) -> ProtocolError:
    try:
        code = WyomingCode(err.code)
    except ValueError:
        code = WyomingCode.BAD_REQUEST
    return ProtocolError(str(err), code)
