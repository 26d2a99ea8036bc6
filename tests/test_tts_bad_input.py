"""Every bad input gets an `error` event with a code, then the connection closes; the server lives on."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from tts_helpers import BUNDLED_PIPER, Reply, metrics, read_reply, run, start_tts, stop_tts, synthesize

MAX_CHARS = 400


@pytest.fixture(scope="module")
def tts():
    server = start_tts(
        "--max-sessions", "1", "--max-text-chars", str(MAX_CHARS), "--max-frame-bytes", "65536",
        "--idle-timeout", "5",
    )
    yield server
    log = stop_tts(server)
    assert "never going to be heard" not in log  # request text is never logged at INFO


async def raw_exchange(port: int, payload: bytes) -> list[dict]:
    """Send raw bytes; return every JSON line received until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 120)  # returns at EOF: the server closed
    writer.close()
    return [json.loads(line) for line in data.split(b"\n") if line.startswith(b"{")]


def error_code(lines: list[dict]) -> str:
    """The code of the error event (its data follows the header as its own JSON line)."""
    assert lines and lines[0]["type"] == "error", lines
    return (lines[0].get("data") or lines[1])["code"]


async def error_then_closed(port: int, *events: Event) -> tuple[str, Reply]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event)
        reply = await read_reply(client, Reply(), ())
        assert reply.error_code, reply.types
        # It closes right after the error; the wait only bounds a hang (idle timeout is 5 s).
        assert await asyncio.wait_for(client.read_event(), 60) is None, "connection stayed open"
        return reply.error_code, reply


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([Synthesize("Hi.", voice=SynthesizeVoice(name="nobody")).event()], "unknown_voice"),
        ([Synthesize("Hi.", voice=SynthesizeVoice(language="tlh")).event()], "unsupported_language"),
        ([Synthesize("x" * (MAX_CHARS + 1)).event()], "too_large"),
        ([SynthesizeStart().event()] + [SynthesizeChunk("word " * 50).event()] * 2, "too_large"),
        ([Event("synthesize", {"text": 42})], "bad_request"),
        ([Event("synthesize", {"text": "Hi.", "voice": "joe"})], "bad_request"),
        ([Event("synthesize", {"text": "Hi.", "speed": 9})], "bad_request"),
        ([Event("synthesize", {"text": "Hi.", "speed": "fast"})], "bad_request"),
        ([SynthesizeChunk("orphan chunk").event()], "bad_request"),
        ([SynthesizeStop().event()], "bad_request"),
        ([SynthesizeStart().event(), SynthesizeStart().event()], "bad_request"),
        # voice profiles need a cloning backend (qwen3); this server has only Piper
        ([Event("voice-create", {"name": "x", "transcript": "Hi.", "language": "en_US", "rate": 16000,
                                 "width": 2, "channels": 1})], "forbidden"),
        ([Event("voice-delete", {"name": "x"})], "forbidden"),
    ],
)
def test_bad_requests(tts, events, code):
    assert run(error_then_closed(tts.port, *events))[0] == code


def test_empty_and_punctuation_only_text_give_empty_audio(tts):
    for text in ("", "   ", "?!...", "— , ;"):
        reply = run(synthesize(tts.port, text))
        assert reply.types == ["audio-start", "audio-stop"], text
        assert reply.events[0].data["rate"] == 22050


def test_garbage_and_oversize_frames(tts):
    assert error_code(run(raw_exchange(tts.port, b"\x00\xffnot json at all\n"))) == "bad_request"
    assert error_code(run(raw_exchange(tts.port, b'["a list"]\n'))) == "bad_request"
    oversize = b'{"type": "synthesize", "data_length": 999999999}\n'
    assert error_code(run(raw_exchange(tts.port, oversize))) == "too_large"
    assert error_code(run(raw_exchange(tts.port, b"{" * 2_000_000))) == "too_large"
    assert run(synthesize(tts.port, "Still fine.")).types[-1] == "audio-stop"


def test_oversize_frame_error_code(tts):
    async def send():
        async with AsyncTcpClient("127.0.0.1", tts.port) as client:
            await client.write_event(Synthesize("x" * 70000).event())
            return await read_reply(client, Reply(), ())

    assert run(send()).error_code == "too_large"


def test_busy_when_all_sessions_are_taken(tts):
    async def scenario():
        await active_sessions(tts, 0)  # what earlier tests held has been released
        async with AsyncTcpClient("127.0.0.1", tts.port) as holder:
            await holder.write_event(SynthesizeStart(voice=SynthesizeVoice(name=BUNDLED_PIPER)).event())
            await holder.write_event(SynthesizeChunk("Holding the only session").event())
            await active_sessions(tts, 1)  # the server has given the holder the only slot
            code, _ = await error_then_closed(tts.port, Synthesize("Me too.").event())
            await holder.write_event(SynthesizeStop().event())
            reply = await read_reply(holder, Reply(), ("synthesize-stopped",))
            return code, reply

    code, reply = run(scenario())
    assert code == "busy"
    assert reply.types[-1] == "synthesize-stopped"
    assert run(synthesize(tts.port, "Free again.")).types[-1] == "audio-stop"


def test_idle_stream_times_out(tts):
    start = time.monotonic()  # before sending: the server's --idle-timeout 5 starts after it reads
    code, reply = run(error_then_closed(tts.port, SynthesizeStart().event()))
    waited = time.monotonic() - start
    assert code == "timeout"
    assert "no event received for 5 s" in reply.events[-1].data["text"], reply.events[-1].data
    # Never before the configured 5 s; the upper bound only says it did not wait for ever.
    assert 5.0 <= waited < 60, waited


async def active_sessions(server, count: int) -> None:
    """Until the server's gauge says `count` sessions hold a slot (its own word, not a sleep)."""
    deadline = time.monotonic() + 60  # failure detection only
    while metrics(server)["wyoming_tts_active_sessions"] != count:
        assert time.monotonic() < deadline, f"active sessions never reached {count}"
        await asyncio.sleep(0.05)


def test_text_is_not_logged_and_errors_are_counted(tts):
    run(synthesize(tts.port, "This is never going to be heard by the log."))
    values = metrics(tts)
    assert values['wyoming_tts_errors_total{code="unknown_voice"}'] >= 1
    assert values['wyoming_tts_errors_total{code="too_large"}'] >= 1
    assert values['wyoming_tts_errors_total{code="busy"}'] >= 1


def test_sigterm_during_synthesis_exits_cleanly():
    server = start_tts("--backend", "kokoro")

    async def long_request():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            text = " ".join(f"Chapter {i} of a long story begins here." for i in range(30))  # no cache hits
            await client.write_event(Synthesize(text).event())
            reply = Reply()
            await read_reply(client, reply, ("audio-chunk",))
            server.proc.send_signal(signal.SIGTERM)
            return await read_reply(client, reply, ("audio-stop",), timeout=120)

    reply = run(long_request())
    assert reply.error_code == "shutting_down"
    assert server.proc.wait(120) == 0
    server.terminate()
    log = server.log()
    assert "Traceback" not in log and "Exception in callback" not in log, log


def test_ten_thousand_characters_without_punctuation_keep_memory_flat():
    """The reference Piper server grows to 24 GB on this; ours speaks it in bounded pieces."""
    server = start_tts("--cache-mb", "0")  # defaults: piper, --max-text-chars 10000
    try:
        text = " ".join(["the quick brown fox jumps over the lazy dog"] * 230)[:10000]
        assert run(synthesize(server.port, text + " x")).error_code == "too_large"
        reply = run(synthesize(server.port, text, extra={"speed": 2.0}))  # speed 2: half the test time
        assert reply.types[-1] == "audio-stop" and len(reply.audio) / 2 / reply.rate > 200
        status = open(f"/proc/{server.proc.pid}/status").read()
        peak_mb = int(status.split("VmHWM:")[1].split()[0]) / 1024
        # 600 MB is the project's budget (issue 5); measured here: about 510 MB with two workers.
        assert peak_mb < 600, f"peak RSS {peak_mb:.0f} MB"
    finally:
        stop_tts(server)
