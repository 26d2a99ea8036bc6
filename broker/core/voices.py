"""Voice profiles (cloned voices) created and deleted through the bridge, as core sessions.

A profile lives on the TTS services that keep voice profiles: those whose `info` carries
the `voice_profiles` marker (see `voice_common.voice_events`), with edits allowed. The bridge sends a
profile operation to **all** of them, not to the least busy one: a later `say` with the
voice goes to whichever TTS service is least busy then, so every service that may get it
must hold the profile. A service that refuses or fails does not undo the others: the
result names the services that took it and those that did not (`Refusal`), and only when
none took it is the result an error (the most telling one: a bad clip is refused by every
service alike).

Create: `start` (`VoiceProfileRequest`), the reference clip as PCM in any number of
messages of any byte count (bounded per message and to MAX_CLIP_SECONDS of its format),
then `stop`. The clip is checked whole (frames, 3-30 s) before any service is asked; the
services check what only they can (silence, a name already taken) and write nothing on a
refusal. Delete: one message, the name. Afterwards the services are described again, so
the bridge's voice lists (`voice/info`, the HTTP API) show the change before the result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event

from voice_common.errors import MqttCode
from voice_common.voice_events import VoiceCreate, VoiceCreated, VoiceDelete, VoiceDeleted

from .errors import SessionError
from .payloads import MAX_CLIP_SECONDS, Stop, VoiceProfileRequest, voice_name
from .results import ProfileDeleted, ProfileSaved, Refusal, Sink
from .services import Service
from .session import AudioInput, Deps, Session
from .wyoming_client import ServiceClient, ServiceFailure

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

#: Bytes of the reference clip per audio-chunk event sent to a service.
SEND_CHUNK_BYTES = 32768
#: Wyoming error codes of a TTS service -> the code the requester gets (others: backend_error).
_SERVICE_CODES = {
    "bad_request": MqttCode.INVALID_REQUEST,
    "invalid_format": MqttCode.INVALID_FORMAT,
    "too_large": MqttCode.TOO_LARGE,
    "voice_exists": MqttCode.VOICE_EXISTS,
    "unknown_voice": MqttCode.UNKNOWN_VOICE,
    "forbidden": MqttCode.DISABLED,
    "busy": MqttCode.BUSY,
    "timeout": MqttCode.TIMEOUT,
}
#: When every service refused: the first of these codes among the refusals is the answer
#: (what the requester can fix beats what the services suffered).
_TELLING = (MqttCode.VOICE_EXISTS, MqttCode.UNKNOWN_VOICE, MqttCode.INVALID_REQUEST, MqttCode.INVALID_FORMAT,
            MqttCode.TOO_LARGE, MqttCode.DISABLED, MqttCode.BUSY, MqttCode.TIMEOUT)


class VoiceSession(Session):
    """Base of a profile operation: which services get it, and how their answers add up."""

    kind = "tts"
    backend = "voice"

    def targets(self) -> list[Service]:
        """The healthy TTS services that keep voice profiles and accept edits."""
        keeping = [s for s in self.deps.pool.services if s.healthy and "tts" in s.kinds and s.profiles is not None]
        editable = [s for s in keeping if s.profiles is not None and s.profiles.editable]
        if editable:
            return editable
        if keeping:
            raise SessionError("the TTS services that keep voice profiles do not accept edits (--no-voice-edits)",
                               MqttCode.DISABLED)
        raise SessionError("no text-to-speech service keeps voice profiles (a cloning backend, e.g. qwen3)",
                           MqttCode.SERVICE_UNAVAILABLE)

    async def on_all(self, attempt: Callable[[Service], Awaitable[T]]) -> tuple[list[Service], list[Refusal]]:
        """Run `attempt` on every target at once; (the services it succeeded on, the refusals)."""
        services = self.targets()
        pool = self.deps.pool

        async def one(service: Service) -> Refusal | None:
            async with pool.lease(service):
                try:
                    await attempt(service)
                    return None
                except SessionError as err:
                    return Refusal(service.name, err.code.value, err.text)
                except ServiceFailure as err:
                    pool.mark_failed(service, err)
                    return Refusal(service.name, MqttCode.SERVICE_UNAVAILABLE.value, str(err))

        outcomes = await asyncio.gather(*(one(s) for s in services))
        done = [s for s, refusal in zip(services, outcomes, strict=True) if refusal is None]
        refused = [r for r in outcomes if r is not None]
        # described again before the result, so every voice list shows the change when it is out
        await asyncio.gather(*(pool.check(s) for s in services), return_exceptions=True)
        if not done:
            raise _verdict(refused)
        for refusal in refused:
            _LOGGER.warning("voice profile %s: service %s refused (%s: %s)", self.ident, refusal.service,
                            refusal.code, refusal.text)
        return done, refused

    async def exchange(self, service: Service, events: list[Event], answer: Callable[[str], bool]) -> Event:
        """Send `events` to `service` and return its answer (an event `answer` accepts), or
        raise SessionError with the service's own error."""
        config = self.deps.config
        async with ServiceClient(service.uri, connect_timeout=config.connect_timeout,
                                 read_timeout=config.backend_timeout) as client:
            for event in events:
                await client.write_event(event)
            while True:
                event = await client.read_event()
                if answer(event.type):
                    return event
                if Error.is_type(event.type):
                    err = Error.from_event(event)
                    raise SessionError(err.text, _SERVICE_CODES.get(err.code or "", MqttCode.BACKEND_ERROR))

    def count(self, started: float) -> None:
        metrics = self.deps.metrics
        metrics.requests.labels(self.backend).inc()
        metrics.latency.labels(self.backend).observe(time.monotonic() - started)


class VoiceCreateSession(AudioInput, VoiceSession):
    """A new profile: its reference clip streams in from a front (chunks of any byte count;
    whole frames are checked at the end), then goes to every target."""

    def __init__(self, site: str | None, ident: str, sink: Sink, deps: Deps, request: VoiceProfileRequest) -> None:
        super().__init__(site, ident, sink, deps)
        self.request = request
        self.accept_audio(request.max_bytes, f"reference clip longer than {MAX_CLIP_SECONDS:g} s")
        self._clip = bytearray()

    async def run(self) -> None:
        while True:  # the clip, until stop (or an error, the idle timeout, a cancel)
            item = await self.next_item()
            if isinstance(item, Stop):
                break
            self._clip += item
        self._check_loss(item)
        self.request.check_clip(len(self._clip))
        started = time.monotonic()
        done, refused = await self.on_all(self._create)
        self.count(started)
        req = self.request
        audio_ms = round(len(self._clip) / req.bytes_per_second * 1000)
        self.release()
        await self.emit(ProfileSaved(req.name, req.languages, tuple(s.name for s in done), tuple(refused), audio_ms))

    def _check_loss(self, stop: Stop) -> None:
        """A clip with a gap would clone a voice with a hiccup: any loss is an error."""
        if (stop.chunks is not None and stop.chunks != self.received_chunks) or (
                stop.nbytes is not None and stop.nbytes != self.received_bytes):
            raise SessionError(f"{stop.chunks} chunks / {stop.nbytes} bytes announced, "
                               f"{self.received_chunks} / {self.received_bytes} received", MqttCode.AUDIO_LOST)

    async def _create(self, service: Service) -> None:
        req = self.request
        fmt = {"rate": req.rate, "width": req.width, "channels": req.channels}
        events = [VoiceCreate(req.name, req.transcript, list(req.languages), description=req.description,
                              **fmt).event(), AudioStart(**fmt).event()]
        clip = bytes(self._clip)
        step = SEND_CHUNK_BYTES // req.frame * req.frame
        events += [AudioChunk(audio=clip[i:i + step], **fmt).event() for i in range(0, len(clip), step)]
        events.append(AudioStop().event())
        await self.exchange(service, events, VoiceCreated.is_type)


class VoiceDeleteSession(VoiceSession):
    """Delete a profile on every target; a service without it counts as refused (unknown_voice)."""

    def __init__(self, site: str | None, ident: str, sink: Sink, deps: Deps, name: str) -> None:
        super().__init__(site, ident, sink, deps)
        self.name = voice_name(name)  # checked by the front already; a path never reaches a service

    async def run(self) -> None:
        started = time.monotonic()
        done, refused = await self.on_all(self._delete)
        self.count(started)
        self.release()
        await self.emit(ProfileDeleted(self.name, tuple(s.name for s in done), tuple(refused)))

    async def _delete(self, service: Service) -> None:
        await self.exchange(service, [VoiceDelete(self.name).event()], VoiceDeleted.is_type)


def _verdict(refused: list[Refusal]) -> SessionError:
    """The error for an operation no service took: the most telling refusal."""
    by_code = {r.code: r for r in reversed(refused)}
    for code in _TELLING:
        if code.value in by_code:
            return SessionError(by_code[code.value].text, code)
    if not refused or all(r.code == MqttCode.SERVICE_UNAVAILABLE.value for r in refused):
        reason = f" ({refused[0].text})" if refused else ""
        return SessionError(f"every TTS service that keeps voice profiles failed{reason}",
                            MqttCode.SERVICE_UNAVAILABLE)
    first = next(r for r in refused if r.code != MqttCode.SERVICE_UNAVAILABLE.value)
    return SessionError(f"{first.service}: {first.text}", MqttCode.BACKEND_ERROR)
