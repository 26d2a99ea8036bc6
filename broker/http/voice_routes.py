"""Voice profiles (cloned voices) over HTTP: `POST /api/v1/voices`, `DELETE /api/v1/voices/{name}`.

The upload is a reference clip in any common format (decoded by `audio_codec`, bounded
in bytes and to the longest clip, 30 s) with its transcript, language(s) and an optional
description; it goes through the same core session as a profile created over MQTT
(`core.voices`), so the checks, the services that get it and the errors are the same.
The key's limits apply as to any upload: its request rate, its audio seconds, a stream slot.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from ..core.errors import SessionError
from ..core.payloads import MAX_CLIP_SECONDS, Stop, VoiceProfileRequest, voice_name
from ..core.results import Failure, ProfileDeleted, ProfileSaved, Refusal
from .audio_codec import AudioCodecError, decode_audio
from .auth import ApiKey
from .errors import ApiError
from .openai_routes import QueueSink, admit, admit_audio, take_stream

router = APIRouter(tags=["voices"])

#: Rate the clip is decoded to: the one cloning models take (the service stores it so).
CLIP_RATE = 24000
#: Fields whose faults the API names as OpenAI does (`param`).
_FIELDS = ("name", "transcript", "language", "description")


@router.post("/api/v1/voices", status_code=201)
async def create_voice(
    request: Request, key: ApiKey,
    file: Annotated[UploadFile, File(description="Reference clip, 3-30 s of one voice: wav, flac, ogg/opus, "
                                                 "mp3, webm, m4a, aac, aiff")],
    name: Annotated[str, Form(description="1-64 letters, digits, '_', '-', '.'")],
    transcript: Annotated[str, Form(description="What the clip says")],
    language: Annotated[str, Form(description="A language tag (en_US), or several separated by commas")],
    description: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    """Create a voice profile on every TTS service that keeps profiles."""
    front = request.app.state.front
    config = front.config
    limiter = admit(front, key)
    try:
        profile = VoiceProfileRequest.parse({
            "name": name, "transcript": transcript, "description": description, "rate": CLIP_RATE,
            "language": [tag.strip() for tag in language.split(",") if tag.strip()]})
    except SessionError as err:
        raise ApiError(err.text, err.code, param=_param(err.text)) from None
    take_stream(limiter)
    try:
        data = await file.read()
        try:
            audio = await asyncio.to_thread(decode_audio, data, max_bytes=config.api_max_upload_bytes,
                                            max_seconds=MAX_CLIP_SECONDS, rate=CLIP_RATE, mono=True)
        except AudioCodecError as err:
            raise ApiError(str(err), err.code, param="file") from None
        del data
        admit_audio(limiter, audio.seconds)
        sink = QueueSink()
        try:
            session = front.core.open_voice_create(profile, sink)
        except SessionError as err:
            raise ApiError.of(err) from None
        try:
            step = max(2, config.max_chunk_bytes - config.max_chunk_bytes % 2)
            for offset in range(0, len(audio.pcm), step):
                session.feed(audio.pcm[offset:offset + step])
            session.stop(Stop.now())
            result = await _last(sink)
        finally:
            if session.task is not None and not session.task.done():
                session.cancel()  # the client went away
    finally:
        limiter.streams.release()
    assert isinstance(result, ProfileSaved)
    return JSONResponse({"name": result.name, "languages": list(result.languages), "services": list(result.services),
                         "failed": _refusals(result.failed), "audio_ms": result.audio_ms}, status_code=201)


@router.delete("/api/v1/voices/{name}")
async def delete_voice(request: Request, key: ApiKey, name: str) -> dict[str, Any]:
    """Delete a voice profile on every TTS service that keeps profiles."""
    front = request.app.state.front
    admit(front, key)
    try:
        sink = QueueSink()
        front.core.open_voice_delete(voice_name(name), sink)
    except SessionError as err:
        raise ApiError.of(err) from None
    result = await _last(sink)
    assert isinstance(result, ProfileDeleted)
    return {"name": result.name, "services": list(result.services), "failed": _refusals(result.failed)}


async def _last(sink: QueueSink) -> ProfileSaved | ProfileDeleted:
    """The session's result; a Failure is raised as the API's error."""
    while True:
        result = await sink.queue.get()
        if isinstance(result, Failure):
            raise ApiError.of(result.error())
        if isinstance(result, ProfileSaved | ProfileDeleted):
            return result


def _refusals(refusals: tuple[Refusal, ...]) -> list[dict[str, str]]:
    return [{"service": r.service, "code": r.code, "message": r.text} for r in refusals]


def _param(text: str) -> str | None:
    """The form field a validation message is about."""
    return next((field for field in _FIELDS if field in text), None)
