"""More clients than sessions: they wait their turn and all get right transcripts."""

from __future__ import annotations

import asyncio

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

from helpers import ServerProcess, word_error_rate
from speech_corpus import say

TEXTS = ["Turn on the kitchen light.", "Close the garage door.", "What time is it?",
         "Play some music in the bedroom.", "Lock the front door.", "Set a timer for five minutes."]


@pytest.fixture(scope="module")
def stt():
    server = ServerProcess("wyoming_stt", "--max-sessions", "2", "--max-queued", "8",
                           "--queue-timeout", "600").wait_ready()
    yield server
    assert server.terminate() == 0


async def _request(port: int, pcm: bytes) -> tuple[str, str]:
    """Home Assistant's sequence sent at once; (event type that ended it, text or code)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(16000, 2, 1).event())
        for i in range(0, len(pcm), 2048):
            await client.write_event(AudioChunk(16000, 2, 1, pcm[i:i + 2048]).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            assert event is not None, "closed without an answer"
            if Transcript.is_type(event.type):
                return "transcript", Transcript.from_event(event).text
            if event.type == "error":
                return "error", event.data["code"]


def test_clients_beyond_max_sessions_wait_and_all_get_transcripts(stt):
    clips = [say("piper", text) for text in TEXTS]  # 6 clients, 2 sessions, 4 wait

    async def run():
        return await asyncio.gather(*(_request(stt.port, clip.pcm) for clip in clips))

    results = asyncio.run(run())
    for clip, (kind, text) in zip(clips, results, strict=True):
        assert kind == "transcript", (clip.text, kind, text)
        assert word_error_rate(clip.text, text) <= 0.25, (clip.text, text)


def test_past_the_line_clients_get_busy(stt):
    """2 in progress + 8 waiting: the 11th and 12th are refused with 'busy' at once."""
    clip = say("piper", TEXTS[0])

    async def run():
        return await asyncio.gather(*(_request(stt.port, clip.pcm) for _ in range(12)))

    results = asyncio.run(run())
    kinds = [kind for kind, _ in results]
    assert kinds.count("transcript") >= 10, results
    busy = [text for kind, text in results if kind == "error"]
    assert busy == ["busy"] * len(busy), results
