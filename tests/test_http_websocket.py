"""`/api/v1/listen` and `/api/v1/speak` of a running bridge (`--no-mqtt --api`), driven by a real
WebSocket client (`websockets`) against the real STT and TTS servers: partials before the final,
audio before `stop`, cancel mid-sentence, a reply completed without `stop`, high-priority text
ahead of normal text, and the abuse cases answered with an error while a parallel session still
works. No assertion depends on how long anything takes."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from helpers import JFK_TEXT, normalize_words, word_error_rate
from http_helpers import api_bridge  # noqa: F401 (fixture)
from mqtt_helpers import jfk_pcm, run, stt_server, tts_server  # noqa: F401 (fixtures)

PATIENCE = 120


async def open_ws(bridge, path: str, key: str | None = "bridge") -> ClientConnection:
    headers = {"Authorization": f"Bearer {bridge.key if key == 'bridge' else key}"} if key else {}
    return await connect(bridge.ws_url + path, additional_headers=headers, max_size=None)


async def next_json(ws: ClientConnection) -> dict[str, Any]:
    """The next text message (binary frames are skipped)."""
    while True:
        message = await asyncio.wait_for(ws.recv(), PATIENCE)
        if isinstance(message, str):
            return json.loads(message)


async def listen(bridge, pcm: bytes, *, frame: int = 3001, pace: float = 0.0,
                 events: list | None = None) -> tuple[list[dict], dict]:
    """One utterance: start, PCM in odd-sized frames (real time with pace=1), stop; returns
    (partials, final). `events` records what was sent and received, in order."""
    events = events if events is not None else []
    async with await open_ws(bridge, "/api/v1/listen") as ws:
        assert (await next_json(ws))["type"] == "ready"
        await ws.send(json.dumps({"type": "start", "sampleRate": 16000, "encoding": "pcm16", "channels": 1,
                                  "language": "en"}))
        assert (await next_json(ws))["type"] == "started"

        async def reader() -> None:
            while True:
                message = await next_json(ws)
                events.append(("recv", message))
                if message["type"] in ("stopped", "error"):
                    return

        reading = asyncio.ensure_future(reader())
        for offset in range(0, len(pcm), frame):
            await ws.send(pcm[offset:offset + frame])
            if pace:
                await asyncio.sleep(frame / 32000 / pace)
        events.append(("sent", "stop"))
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reading, PATIENCE)
    received = [m for kind, m in events if kind == "recv"]
    finals = [m for m in received if m["type"] == "final"]
    assert len(finals) == 1, received
    assert received[-1] == {"type": "stopped", "reason": "stop"}
    return [m for m in received if m["type"] == "partial"], finals[0]


def test_listen_sends_partials_before_the_final(api_bridge, jfk_pcm):  # noqa: F811
    events: list = []
    partials, final = run(listen(api_bridge, jfk_pcm, pace=1.0, events=events))
    assert word_error_rate(JFK_TEXT, final["text"]) < 0.2, final
    assert final["language"] == "en" and final["durationMs"] > 10000
    assert partials, events
    first_partial = next(i for i, (kind, m) in enumerate(events) if kind == "recv" and m["type"] == "partial")
    assert first_partial < events.index(("sent", "stop")), "no partial before the end of the audio"


async def speak_until_audio(ws: ClientConnection, pieces: list[str]) -> list[bytes]:
    """Send text pieces (like LLM tokens), then wait for the first audio frame."""
    for piece in pieces:
        await ws.send(json.dumps({"type": "speak", "text": piece}))
    audio = []
    while not audio:
        message = await asyncio.wait_for(ws.recv(), PATIENCE)
        if isinstance(message, bytes):
            audio.append(message)
        else:
            assert json.loads(message)["type"] != "error", message
    return audio


async def collect_until(ws: ClientConnection, kind: str, *, or_error: bool = False) -> tuple[list[bytes], list[dict]]:
    """Audio and messages up to the first of type `kind` (or `error`, with or_error)."""
    audio, messages = [], []
    while True:
        message = await asyncio.wait_for(ws.recv(), PATIENCE)
        if isinstance(message, bytes):
            audio.append(message)
            continue
        messages.append(json.loads(message))
        if messages[-1]["type"] == kind or (or_error and messages[-1]["type"] == "error"):
            return audio, messages


def transcribe(bridge, pcm: bytes, rate: int) -> str:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    answer = httpx.post(bridge.url + "/v1/audio/transcriptions", headers={"Authorization": f"Bearer {bridge.key}"},
                        files={"file": ("speech.wav", out.getvalue(), "audio/wav")}, data={"model": "whisper-1"},
                        timeout=PATIENCE)
    assert answer.status_code == 200, answer.text
    return answer.json()["text"]


def test_speak_streams_audio_before_stop_and_completes(api_bridge):  # noqa: F811
    first = "The weather is calm and clear today."
    second = " Tomorrow it will rain in the hills."

    async def scenario():
        async with await open_ws(api_bridge, "/api/v1/speak") as ws:
            ready = await next_json(ws)
            await ws.send(json.dumps({"type": "start", "sampleRate": 16000, "encoding": "pcm16"}))
            started = await next_json(ws)
            audio = await speak_until_audio(ws, [w + " " for w in first.split()])  # before any stop
            await ws.send(json.dumps({"type": "speak", "text": second}))
            await ws.send(json.dumps({"type": "stop", "reason": "done talking"}))
            more, messages = await collect_until(ws, "stopped")
            return ready, started, b"".join(audio + more), messages

    ready, started, pcm, messages = run(scenario())
    assert ready["type"] == "ready" and ready["sessionId"] and ready["capabilities"]["streaming"] is True
    assert started == {"type": "started", "sampleRate": 16000, "encoding": "pcm16", "voice": ready["voiceLoaded"]}
    completes = [m for m in messages if m["type"] == "complete"]  # one, or two if a pause flushed the first part
    assert [m["type"] for m in messages] == ["complete"] * len(completes) + ["stopped"], messages
    assert sum(m["charactersProcessed"] for m in completes) == len(" ".join(first.split()) + " " + second)
    assert sum(m["audioLengthMs"] for m in completes) > 1000
    assert messages[-1] == {"type": "stopped", "reason": "done talking"}
    assert word_error_rate(first + second, transcribe(api_bridge, pcm, 16000)) <= 0.25


def test_speak_cancel_mid_sentence_keeps_the_session(api_bridge):  # noqa: F811
    long_text = ("This is a long story about a lighthouse keeper. He lived alone on a rock far out at sea. "
                 "Every night he climbed the stairs to light the lamp. Ships passed safely all winter long.")
    short = "Goodbye for now."

    async def scenario():
        async with await open_ws(api_bridge, "/api/v1/speak") as ws:
            await next_json(ws)
            await ws.send(json.dumps({"type": "start", "sampleRate": 16000, "transport": "json"}))
            await next_json(ws)
            await ws.send(json.dumps({"type": "speak", "text": long_text}))
            first = await next_json(ws)  # audio as JSON: audioChunk
            await ws.send(json.dumps({"type": "cancel"}))
            await ws.send(json.dumps({"type": "speak", "text": short}))
            await ws.send(json.dumps({"type": "stop"}))
            _, messages = await collect_until(ws, "stopped")
            return first, messages

    first, messages = run(scenario())
    assert first["type"] == "audioChunk" and first["sequenceNumber"] == 1 and first["data"]
    kinds = [m["type"] for m in messages]
    assert "error" not in kinds, messages
    completes = [m for m in messages if m["type"] == "complete"]
    assert len(completes) == 1 and completes[0]["charactersProcessed"] == len(short)  # only the new stream
    assert kinds[-1] == "stopped"
    seqs = [m["sequenceNumber"] for m in messages if m["type"] == "audioChunk"]
    assert seqs == list(range(2, 2 + len(seqs)))


def test_abuse_is_answered_with_errors_while_a_parallel_session_works(api_bridge, jfk_pcm):  # noqa: F811
    async def abuse() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        # Garbage JSON and wrong order: a recoverable error, and the connection still works.
        async with await open_ws(api_bridge, "/api/v1/listen") as ws:
            await next_json(ws)
            await ws.send("{not json")
            seen["garbage"] = await next_json(ws)
            await ws.send(b"\x00\x01" * 100)
            seen["binary_first"] = await next_json(ws)
            await ws.send(json.dumps({"type": "stop"}))
            seen["stop_first"] = await next_json(ws)
            await ws.send(json.dumps({"type": "start", "sampleRate": 12345}))
            seen["bad_rate"] = await next_json(ws)
            await ws.send(json.dumps({"type": "start"}))
            seen["then_started"] = await next_json(ws)
        # An oversize frame: too_large, and the server closes with 1009.
        async with await open_ws(api_bridge, "/api/v1/listen") as ws:
            await next_json(ws)
            await ws.send(json.dumps({"type": "start"}))
            await next_json(ws)
            await ws.send(b"\x00" * 40000)
            seen["oversize"] = await next_json(ws)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), PATIENCE)
            seen["oversize_close"] = closed.value.rcvd.code if closed.value.rcvd else None
        # Idle: no start ever comes.
        async with await open_ws(api_bridge, "/api/v1/speak") as ws:
            await next_json(ws)
            seen["idle"] = await next_json(ws)
        # No key, a bad key; and a browser's key in `start`.
        async with await open_ws(api_bridge, "/api/v1/listen", key=None) as ws:
            await next_json(ws)
            await ws.send(json.dumps({"type": "start"}))
            seen["no_key"] = await next_json(ws)
        async with await open_ws(api_bridge, "/api/v1/speak", key="wvb_wrong") as ws:
            seen["bad_key"] = await next_json(ws)
        async with await open_ws(api_bridge, "/api/v1/speak", key=None) as ws:
            await next_json(ws)
            await ws.send(json.dumps({"type": "start", "authToken": api_bridge.key}))
            seen["token_in_start"] = await next_json(ws)
        return seen

    async def scenario():
        parallel = asyncio.ensure_future(listen(api_bridge, jfk_pcm, pace=2.0))
        seen = await abuse()
        return seen, await parallel

    seen, (_, final) = run(scenario())
    assert word_error_rate(JFK_TEXT, final["text"]) < 0.2  # the parallel session was not disturbed
    for name in ("garbage", "binary_first", "stop_first"):
        assert seen[name]["type"] == "error" and seen[name]["recoverable"] is True, seen[name]
    assert seen["garbage"]["code"] == "invalid_request"
    assert seen["bad_rate"]["code"] == "invalid_format"
    assert seen["then_started"]["type"] == "started"
    assert seen["oversize"]["code"] == "too_large" and seen["oversize"]["recoverable"] is False
    assert seen["oversize_close"] == 1009
    assert seen["idle"]["code"] == "timeout"
    assert seen["no_key"]["code"] == "unauthorized" and seen["bad_key"]["code"] == "unauthorized"
    assert seen["token_in_start"]["type"] == "started"
    assert normalize_words(final["text"])


def test_float32_audio_both_ways(api_bridge):  # noqa: F811
    """pcm32f: speak at 16 kHz float32, then that very audio listened to as float32."""
    import numpy as np

    sentence = "Turn the heating down a little tonight."

    async def speak_float() -> bytes:
        async with await open_ws(api_bridge, "/api/v1/speak") as ws:
            await next_json(ws)
            await ws.send(json.dumps({"type": "start", "sampleRate": 16000, "encoding": "pcm32f"}))
            assert (await next_json(ws))["encoding"] == "pcm32f"
            await ws.send(json.dumps({"type": "speak", "text": sentence}))
            await ws.send(json.dumps({"type": "stop"}))
            audio, _ = await collect_until(ws, "stopped")
            return b"".join(audio)

    async def listen_float(data: bytes) -> dict:
        async with await open_ws(api_bridge, "/api/v1/listen") as ws:
            await next_json(ws)
            await ws.send(json.dumps({"type": "start", "encoding": "pcm32f", "language": "en"}))
            await next_json(ws)
            for offset in range(0, len(data), 5001):  # odd sizes: split floats are carried over
                await ws.send(data[offset:offset + 5001])
            await ws.send(json.dumps({"type": "stop"}))
            _, messages = await collect_until(ws, "stopped")
            return next(m for m in messages if m["type"] == "final")

    floats = run(speak_float())
    assert len(floats) % 4 == 0
    samples = np.frombuffer(floats, dtype="<f4")
    assert 0.05 < float(np.abs(samples).max()) <= 1.0  # float audio in range, not int16 bytes read as floats
    final = run(listen_float(floats))
    assert word_error_rate(sentence, final["text"]) <= 0.25, final


async def start_speak(ws: ClientConnection, rate: int = 16000) -> None:
    assert (await next_json(ws))["type"] == "ready"
    await ws.send(json.dumps({"type": "start", "sampleRate": rate, "encoding": "pcm16"}))
    assert (await next_json(ws))["type"] == "started"


def test_speak_completes_each_reply_without_stop(api_bridge):  # noqa: F811
    """A chat backend sends a reply's tokens and waits, no `stop`: the whole reply is spoken,
    the unfinished last sentence too, then `complete`; the next reply on the same connection
    completes as well. The audio, transcribed, has every word once."""
    replies = ["The garden gate is painted green. Please bring the blue umbrella",
               "The children played football in the park until dinner"]

    async def scenario():
        heard = []
        async with await open_ws(api_bridge, "/api/v1/speak") as ws:
            await start_speak(ws)
            for reply in replies:
                for word in reply.split(" "):  # like LLM tokens
                    await ws.send(json.dumps({"type": "speak", "text": word + " "}))
                audio, messages = [], []
                while sum(m.get("charactersProcessed", 0) for m in messages) < len(reply) + 1:
                    more, said = await collect_until(ws, "complete", or_error=True)  # no stop: the server's word
                    audio += more
                    messages += said
                    assert said[-1]["type"] == "complete", messages
                heard.append((b"".join(audio), messages))
            await ws.send(json.dumps({"type": "stop"}))
            _, end = await collect_until(ws, "stopped")
        return heard, end

    heard, end = run(scenario())
    for reply, (pcm, messages) in zip(replies, heard, strict=True):
        assert {m["type"] for m in messages} == {"complete"}, messages  # no error, no timeout
        assert sum(m["charactersProcessed"] for m in messages) == len(reply) + 1  # one stream unless a stall
        text = transcribe(api_bridge, pcm, 16000)
        assert word_error_rate(reply, text) <= 0.25, text  # a repeat or a dropped sentence is far above
        last = normalize_words(reply)[-1]
        assert normalize_words(text).count(last) == 1, text  # the unfinished sentence, spoken once
    assert end == [{"type": "stopped", "reason": "stop"}]


def test_speak_high_priority_goes_ahead_and_normal_text_continues(api_bridge):  # noqa: F811
    """Normal text is being spoken; a high-priority sentence comes, then the normal text's
    last sentence. The high sentence is heard before that last sentence, and every word of
    the normal text is still spoken."""
    story = ("Once upon a time a tired lighthouse keeper lived on a rock far out at sea. Every night he "
             "climbed the stairs to light the lamp. Ships passed safely all winter long.")
    urgent = "Attention, the oven timer has finished."
    ending = " Finally the old keeper went quietly to sleep."

    async def scenario():
        async with await open_ws(api_bridge, "/api/v1/speak") as ws:
            await start_speak(ws)
            audio = await speak_until_audio(ws, [story])
            await ws.send(json.dumps({"type": "speak", "text": urgent, "priority": "high"}))
            await ws.send(json.dumps({"type": "speak", "text": ending}))
            await ws.send(json.dumps({"type": "stop"}))
            received = []
            while True:
                message = await asyncio.wait_for(ws.recv(), PATIENCE)
                received.append(message if isinstance(message, bytes) else json.loads(message))
                if isinstance(received[-1], dict) and received[-1]["type"] == "stopped":
                    return audio, received

    audio, received = run(scenario())
    messages = [m for m in received if isinstance(m, dict)]
    assert "error" not in [m["type"] for m in messages], messages
    completes = [m for m in messages if m["type"] == "complete"]
    assert sum(m["charactersProcessed"] for m in completes) == len(story + urgent + ending)
    urgent_done = next(i for i, m in enumerate(received) if isinstance(m, dict) and m["type"] == "complete"
                       and m["charactersProcessed"] == len(urgent))
    # The high stream's audio goes out in one piece and ends with its `complete`: the last
    # audioLengthMs before it. Around it, the normal stream's audio, cut between two chunks.
    before = b"".join(audio + [m for m in received[:urgent_done] if isinstance(m, bytes)])
    after = b"".join(m for m in received[urgent_done:] if isinstance(m, bytes))
    cut = len(before) - round(received[urgent_done]["audioLengthMs"] * 16) * 2
    assert cut >= 0 and after, "the high sentence did not go ahead of the rest of the normal text"
    heard_urgent = transcribe(api_bridge, before[cut:], 16000)
    heard_rest = normalize_words(transcribe(api_bridge, after, 16000))
    heard_normal = transcribe(api_bridge, before[:cut] + after, 16000)
    # The high sentence's words (tiny.en may mishear one: "oven" -> "up and" was seen).
    urgent_words, heard_urgent_words = normalize_words(urgent), normalize_words(heard_urgent)
    assert sum(word in heard_urgent_words for word in urgent_words) >= len(urgent_words) - 1, heard_urgent
    # The normal text's end came after the high sentence (most of its words: one may be misheard).
    ending_words = normalize_words(ending)
    assert sum(word in heard_rest for word in ending_words) >= len(ending_words) - 2, heard_rest
    assert word_error_rate(story + ending, heard_normal) <= 0.2, heard_normal  # all of it, once
