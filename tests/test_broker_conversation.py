"""Conversation mode with a test chat backend over MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import time

from helpers import JFK_TEXT, word_error_rate
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Probe, audio_of, bridge, jfk_pcm, mosquitto, run, send_audio, stt_server, tts_server,
)

REPLY = "You can start by switching off the lights."


async def set_mode(probe: Probe, site: str, mode: str) -> None:
    await probe.publish(f"voice/site/{site}/settings/set", {"mode": mode})
    while (await probe.next(f"voice/site/{site}/settings")).json()["mode"] != mode:
        pass


async def chat_backend(mosquitto, requests: list, streamed: bool, ready: asyncio.Event) -> None:
    """Answers every request: whole on `response`, or streamed as `response/text` + `response/end`."""
    async with Probe(mosquitto, "voice/chat/+/request") as backend:
        ready.set()  # subscribed: no request can be missed from here on
        while True:
            msg = await backend.next("voice/chat/*/request", 3600)
            requests.append(msg)
            site, sid = msg.topic.split("/")[2], msg.json()["sid"]
            if site == "porch":
                continue  # a backend that never answers
            if not streamed:
                await backend.publish(f"voice/chat/{site}/response", {"sid": sid, "text": REPLY})
                continue
            for part in ("You can start ", "by switching off ", "the lights."):
                # v5 backends may name the turn by Correlation Data instead of a JSON body
                await backend.publish(f"voice/chat/{site}/response/text", part, correlation=sid.encode())
                await asyncio.sleep(0.05)
            await backend.publish(f"voice/chat/{site}/response/end", {"sid": sid})


def converse(mosquitto, jfk_pcm, site: str, streamed: bool):
    async def scenario():
        requests: list = []
        ready = asyncio.Event()
        backend = asyncio.ensure_future(chat_backend(mosquitto, requests, streamed, ready))
        try:
            async with Probe(mosquitto, f"voice/site/{site}/settings", f"voice/stt/{site}/#",
                             f"voice/tts/{site}/#", "voice/stt/kitchen/+/result/final") as device:
                await asyncio.wait_for(ready.wait(), 60)  # the backend has subscribed
                await set_mode(device, site, "conversation")
                await send_audio(device, site, "turn1", jfk_pcm)
                seen = await device.until(f"voice/tts/{site}/turn1/result/done", 60)
                start = next(m for m in seen if m.topic.endswith("/result/start")).json()
                # What was spoken, transcribed at a site in transcribe_only mode.
                await send_audio(device, "kitchen", f"check-{site}", audio_of(seen), rate=start["rate"])
                check = await device.next(f"voice/stt/kitchen/check-{site}/result/final")
                return requests, seen, check.json()["text"]
        finally:
            backend.cancel()
            with contextlib.suppress(BaseException):
                await backend

    return run(scenario())


def test_conversation_whole_reply(bridge, mosquitto, jfk_pcm):
    requests, seen, spoken = converse(mosquitto, jfk_pcm, "lounge", streamed=False)
    request = requests[0]
    body = request.json()
    assert body["sid"] == "turn1" and body["language"] == "en"
    assert word_error_rate(JFK_TEXT, body["text"]) == 0
    # v5: a backend can answer generically to the Response Topic with the Correlation Data.
    assert request.properties.ResponseTopic == "voice/chat/lounge/response"
    assert request.properties.CorrelationData == b"turn1"
    kinds = [m.topic.rsplit("/", 1)[1] for m in seen if "/result/" in m.topic]
    assert kinds.index("final") < kinds.index("start") < kinds.index("done")
    assert word_error_rate(REPLY, spoken) <= 0.25, spoken


def test_conversation_streamed_reply(bridge, mosquitto, jfk_pcm):
    requests, seen, spoken = converse(mosquitto, jfk_pcm, "study", streamed=True)
    assert [r.topic for r in requests] == ["voice/chat/study/request"]
    assert word_error_rate(REPLY, spoken) <= 0.25, spoken


def test_chat_backend_silent_times_out(bridge, mosquitto, jfk_pcm):
    async def scenario():
        async with Probe(mosquitto, "voice/site/porch/settings", "voice/tts/porch/+/result/#",
                         "voice/stt/porch/+/result/#") as device:
            await set_mode(device, "porch", "conversation")
            await send_audio(device, "porch", "t9", jfk_pcm[: 16000 * 2 * 3])
            stopped = time.monotonic()  # the chat request (and its --chat-timeout 3) comes later
            final = await device.next("voice/stt/porch/t9/result/final")
            error = await device.next("voice/tts/porch/t9/result/error", 60)  # detects a hang only
            return final, error, time.monotonic() - stopped

    final, error, waited = run(scenario())
    assert error.json()["code"] == "timeout"
    assert "within 3 s" in error.json()["message"] and waited >= 3.0, (waited, error.payload)

