"""OpenAI's audio API on the core: transcriptions, speech, and the voice lists.

`POST /v1/audio/transcriptions` decodes the uploaded file (any common format; bounded in
bytes and seconds) in a thread, charges its seconds to the key, and runs it through an
STT session like any other request. `POST /v1/audio/speech` opens a TTS session and
streams the encoded audio as the service makes it: the status line waits for the first
audio (so a refusal is a proper error status), after which a failure can only end the
body early. Every call checks the key, its request rate, its audio-seconds rate (429 with
`Retry-After`) and holds one of its stream slots while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from voice_common.errors import MqttCode

from ..core.errors import SessionError
from ..core.limits import KeyLimiter, retry_after_header
from ..core.payloads import Stop, SttRequest, Voice, check_text
from ..core.results import Audio, AudioFormat, Done, Failure, Final, Result
from .audio_codec import SPEECH_MEDIA_TYPES, AudioCodecError, decode_audio, speech_encoder
from .auth import ApiKey
from .errors import ApiError, HttpOnlyCode
from .front import FrontState
from .transcript_formats import TRANSCRIPT_MEDIA_TYPES, Transcript, render_transcript

_LOGGER = logging.getLogger(__name__)

router = APIRouter(tags=["openai"])

#: OpenAI's own voice names: a client written for OpenAI sends one; it gets the default voice.
OPENAI_VOICES = frozenset("alloy ash ballad coral echo fable nova onyx sage shimmer verse".split())
#: Rate of the PCM fed to STT for an upload.
UPLOAD_RATE = 16000


def _front(request: Request) -> FrontState:
    return request.app.state.front


def admit(front: FrontState, key: object | None) -> KeyLimiter:
    """The key's limiter, with this call counted; raises the 429."""
    limiter = front.limiter(key)
    wait = limiter.admit_request()
    if wait is not None:
        raise ApiError("this key is over its request rate", HttpOnlyCode.RATE_LIMITED,
                       headers={"Retry-After": retry_after_header(wait)})
    return limiter


def admit_audio(limiter: KeyLimiter, seconds: float) -> None:
    wait = limiter.admit_audio(seconds)
    if wait is None:
        return
    if math.isinf(wait):
        raise ApiError(f"{seconds:.0f} s of audio is more than this key may use in an hour", MqttCode.TOO_LARGE)
    raise ApiError("this key is over its audio-seconds rate", HttpOnlyCode.RATE_LIMITED,
                   headers={"Retry-After": retry_after_header(wait)})


def take_stream(limiter: KeyLimiter) -> None:
    if not limiter.streams.try_acquire():
        raise ApiError(f"at most {limiter.streams.limit} streams at once for this key", HttpOnlyCode.RATE_LIMITED,
                       headers={"Retry-After": "1"})


class QueueSink:
    """A session's results into a queue, for a route to await."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Result] = asyncio.Queue()

    async def send(self, result: Result) -> None:
        self.queue.put_nowait(result)


@router.post("/v1/audio/transcriptions")
async def transcriptions(
    request: Request, key: ApiKey,
    file: Annotated[UploadFile, File(description="Audio: wav, flac, ogg/opus, mp3, webm, m4a, aac, aiff")],
    model: Annotated[str, Form()] = "whisper-1",
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[str, Form()] = "json",
    temperature: Annotated[float | None, Form()] = None,
) -> Response:
    """Transcribe an audio file (OpenAI's `client.audio.transcriptions.create`). `prompt`
    and `temperature` are accepted and not used (the Wyoming services take neither)."""
    front = _front(request)
    config = front.config
    limiter = admit(front, key)
    if response_format not in TRANSCRIPT_MEDIA_TYPES:
        raise ApiError(f"response_format must be one of {', '.join(TRANSCRIPT_MEDIA_TYPES)}",
                       MqttCode.INVALID_REQUEST, param="response_format")
    models = {m["name"] for m in front.stt_models()}
    try:
        stt_request = SttRequest.parse({"rate": UPLOAD_RATE, "width": 2, "channels": 1, "language": language,
                                        "model": model if model in models else None})
    except SessionError as err:
        raise ApiError(err.text, err.code, param="language") from None
    take_stream(limiter)
    try:
        data = await file.read()
        try:
            audio = await asyncio.to_thread(
                decode_audio, data, max_bytes=config.api_max_upload_bytes,
                max_seconds=min(config.api_max_audio_seconds, config.max_audio_seconds), rate=UPLOAD_RATE, mono=True)
        except AudioCodecError as err:
            raise ApiError(str(err), err.code, param="file") from None
        del data
        admit_audio(limiter, audio.seconds)
        final = await _transcribe(front, stt_request, audio.pcm)
    finally:
        limiter.streams.release()
    transcript = Transcript(final.text, final.language, audio.seconds)
    body, media_type = render_transcript(transcript, response_format)
    return Response(body, media_type=media_type)


async def _transcribe(front: FrontState, request: SttRequest, pcm: bytes) -> Final:
    sink = QueueSink()
    try:
        session = front.core.open_stt(request, sink)
    except SessionError as err:
        raise ApiError.of(err) from None
    try:
        step = max(2, front.config.max_chunk_bytes - front.config.max_chunk_bytes % 2)
        for offset in range(0, len(pcm), step):
            session.feed(pcm[offset:offset + step])
        session.stop(Stop.now())
        while True:
            result = await sink.queue.get()
            if isinstance(result, Final):
                return result
            if isinstance(result, Failure):
                raise ApiError.of(result.error())
    finally:
        if session.task is not None and not session.task.done():
            session.cancel()  # the client went away


@router.post("/v1/audio/speech", response_class=StreamingResponse,
             responses={200: {"content": {t: {} for t in SPEECH_MEDIA_TYPES.values()}}})
async def speech(request: Request, key: ApiKey, body: Annotated[dict[str, Any], Body()]) -> StreamingResponse:
    """Speak `input` (OpenAI's `client.audio.speech.create`): `voice` (a voice of
    /v1/audio/voices; OpenAI's names get the default voice), `response_format` (wav, pcm,
    mp3, opus, flac, aac; default mp3), `speed`. The body streams as audio is made."""
    front = _front(request)
    config = front.config
    limiter = admit(front, key)
    text = body.get("input")
    if not isinstance(text, str):
        raise ApiError("'input' must be a string", MqttCode.INVALID_REQUEST, param="input")
    response_format = body.get("response_format") or "mp3"
    if response_format not in SPEECH_MEDIA_TYPES:
        raise ApiError(f"response_format must be one of {', '.join(SPEECH_MEDIA_TYPES)}", MqttCode.INVALID_REQUEST,
                       param="response_format")
    voice_name = body.get("voice")
    if isinstance(voice_name, str) and voice_name in OPENAI_VOICES \
            and voice_name not in {v["name"] for v in front.voices()}:
        voice_name = None
    try:
        check_text(text, config.api_max_text_chars)
        voice = Voice.parse({"voice": voice_name, "speed": body.get("speed")})
    except SessionError as err:
        raise ApiError(err.text, err.code, param="input" if err.code == MqttCode.TOO_LARGE else None) from None
    take_stream(limiter)
    held = [True]

    def release_stream(*_: object) -> None:
        """Idempotent: from the body's end, or the session's end when the body never started
        (a client gone before its first byte: Starlette then never runs the generator)."""
        if held[0]:
            held[0] = False
            limiter.streams.release()

    sink = QueueSink()
    try:
        session = front.core.open_tts(voice, sink, text=text)
    except SessionError as err:
        release_stream()
        raise ApiError.of(err) from None
    if session.task is not None:
        session.task.add_done_callback(release_stream)
    try:
        first = await sink.queue.get()
        if isinstance(first, Failure):
            raise ApiError.of(first.error())
        if not isinstance(first, AudioFormat):
            raise ApiError("the TTS service sent audio without its format", MqttCode.BACKEND_ERROR)
        try:
            encoder = speech_encoder(response_format, first.rate, first.channels)
        except AudioCodecError as err:
            raise ApiError(str(err), err.code, param="response_format") from None
    except BaseException:
        session.cancel()
        release_stream()
        raise

    async def stream() -> AsyncIterator[bytes]:
        try:
            while True:
                result = await sink.queue.get()
                if isinstance(result, Audio):
                    data = encoder.feed(result.data)
                elif isinstance(result, Done):
                    limiter.charge_audio(result.audio_ms / 1000)
                    data = encoder.finish()
                    if data:
                        yield data
                    return
                elif isinstance(result, Failure):
                    _LOGGER.warning("speech stream ended early: %s (%s)", result.text, result.code)
                    return
                else:
                    continue
                if data:
                    yield data
        finally:
            with contextlib.suppress(Exception):
                if session.task is not None and not session.task.done():
                    session.cancel()
            release_stream()

    return StreamingResponse(stream(), media_type=SPEECH_MEDIA_TYPES[response_format])


@router.get("/v1/audio/voices")
async def openai_voices(request: Request, key: ApiKey) -> dict[str, Any]:
    """The voices the TTS services offer."""
    admit(_front(request), key)
    return {"voices": _voice_list(_front(request))}


@router.get("/api/v1/voices")
async def voices(request: Request, key: ApiKey) -> dict[str, Any]:
    """The voices the TTS services offer: name, languages, backend, kind (builtin or profile)."""
    admit(_front(request), key)
    return {"voices": _voice_list(_front(request))}


def _voice_list(front: FrontState) -> list[dict[str, Any]]:
    """kind: `profile` for a voice profile (cloned voice, see voice_routes), else `builtin`."""
    profiles = front.profile_voices()
    return [{"name": v["name"], "languages": v["languages"], "backend": v["backend"],
             "kind": "profile" if v["name"] in profiles else "builtin"} for v in front.voices()]
