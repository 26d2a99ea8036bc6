"""Streaming synthesis as Home Assistant drives it: text chunks split anywhere, audio early."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from helpers import word_error_rate
from tts_helpers import BUNDLED_PIPER, Reply, Transcriber, metrics, read_reply, run, start_tts, stop_tts, stream, synthesize

TEXT = (
    "Good evening. The living room lights are now off and the doors are locked. "
    "Tomorrow will be cloudy with light rain in the afternoon."
)


@pytest.fixture(scope="module")
def tts():
    server = start_tts("--backend", "piper", "--fallback", "kokoro")
    yield server
    stop_tts(server)


@pytest.fixture(scope="module")
def stt():
    transcriber = Transcriber()
    yield transcriber
    transcriber.close()


def split_every(text: str, size: int) -> list[str]:
    """Chunks of `size` characters: cuts through words, as LLM tokens do."""
    return [text[i:i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(("name", "pause", "threshold"), [(BUNDLED_PIPER, 0.08, 0.15), ("jf_alpha", 0.12, 0.25)])
def test_home_assistant_sequence_speaks_before_the_text_ends(tts, stt, name, pause, threshold):
    chunks = split_every(TEXT, 7)
    assert any(a[-1].isalpha() and b[0].isalpha() for a, b in zip(chunks, chunks[1:]))  # mid-word cuts
    # Half the text (two sentences), then the stream waits for audio before sending the rest:
    # audio that only came with the end of the text would never come, so this is order, not speed.
    half = len(chunks) // 2
    reply, _ = run(stream(tts.port, chunks, name=name, pause=pause, audio_after=half))

    types = reply.types
    assert types[0] == "audio-start" and types.count("audio-start") == 1
    assert types[-2:] == ["audio-stop", "synthesize-stopped"]
    assert set(types[1:-2]) == {"audio-chunk"}
    formats = {(e.data["rate"], e.data["width"], e.data["channels"]) for e in reply.events if e.type == "audio-chunk"}
    assert formats == {(reply.rate, 2, 1)}

    # The compatibility `synthesize` inside the stream was ignored: the text is spoken once.
    whole = run(synthesize(tts.port, TEXT, name=name))
    assert 0.8 < len(reply.audio) / len(whole.audio) < 1.25
    assert word_error_rate(TEXT, stt(reply.audio, reply.rate)) <= threshold


def test_a_chunk_ending_a_sentence_is_spoken_without_waiting(tts):
    async def scenario():
        async with AsyncTcpClient("127.0.0.1", tts.port) as client:
            reply = Reply()
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=BUNDLED_PIPER)).event())
            await client.write_event(SynthesizeChunk(text="The kitchen light ").event())
            await client.write_event(SynthesizeChunk(text="is on.").event())
            # No more text and no stop sent yet: audio must come anyway (a server that held the
            # sentence for the next chunk would send nothing, or `timeout` after 30 s idle).
            await read_reply(client, reply, ("audio-chunk",))
            early = list(reply.types)
            await client.write_event(SynthesizeChunk(text=" Bye").event())
            await client.write_event(SynthesizeStop().event())
            await read_reply(client, reply, ("synthesize-stopped",))
            return reply, early

    reply, early = run(scenario())
    assert early == ["audio-start", "audio-chunk"], early
    assert reply.types.count("audio-start") == 1 and reply.types[-2:] == ["audio-stop", "synthesize-stopped"]


def test_empty_and_punctuation_only_streams_just_stop(tts):
    for chunks in ([], [""], ["...", " ?! ", "—"]):
        reply, _ = run(stream(tts.port, chunks, compat=False))
        assert reply.types == ["synthesize-stopped"], chunks


def test_two_streams_on_one_connection(tts):
    async def scenario():
        async with AsyncTcpClient("127.0.0.1", tts.port) as client:
            replies = []
            for text in ("First request.", "Second request."):
                reply = Reply()
                await client.write_event(SynthesizeStart().event())
                await client.write_event(SynthesizeChunk(text=text).event())
                await client.write_event(SynthesizeStop().event())
                replies.append(await read_reply(client, reply, ("synthesize-stopped",)))
            return replies

    for reply in run(scenario()):
        assert reply.types[0] == "audio-start" and reply.types[-1] == "synthesize-stopped"


def test_client_leaving_mid_stream_stops_its_synthesis(tts):
    sentence = "This sentence is one of many in a long story that nobody will hear to the end. "
    before = metrics(tts)

    async def leave_early():
        async with AsyncTcpClient("127.0.0.1", tts.port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="jm_kumo")).event())
            for _ in range(30):
                await client.write_event(SynthesizeChunk(text=sentence).event())
            reply = Reply()
            await read_reply(client, reply, ("audio-chunk",))
            assert client._writer is not None
            client._writer.transport.get_extra_info("socket").setsockopt(  # abrupt: RST, no goodbye
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )

    run(leave_early())
    # The piece being synthesized when the client left still finishes (a bounded unit cannot be
    # interrupted; Kokoro on a busy 2-core machine needs seconds); then the server drops the rest.
    deadline = time.monotonic() + 120  # failure detection only
    while metrics(tts).get("wyoming_tts_cancelled_total", 0) < before.get("wyoming_tts_cancelled_total", 0) + 1:
        assert time.monotonic() < deadline, "the server did not notice that the client left"
        time.sleep(0.2)
    key = 'wyoming_tts_characters_total{backend="kokoro"}'
    after = metrics(tts)
    for _ in range(8):  # settled: no new piece within 4 s (one piece takes Kokoro ~1-3 s here)
        mid = after
        time.sleep(4.0)
        after = metrics(tts)
        if after.get(key, 0) == mid.get(key, 0):
            break
    spoken = after.get(key, 0) - before.get(key, 0)
    assert after.get(key, 0) == mid.get(key, 0), "synthesis went on after the client left"
    assert spoken < 3 * len(sentence), f"{spoken} characters synthesized of {30 * len(sentence)}"
    assert after["wyoming_tts_active_sessions"] == 0
    assert run(synthesize(tts.port, "Still here.")).types[-1] == "audio-stop"
