"""STT end to end over real TCP with the wyoming client and the bundled tiny.en model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from helpers import JFK_FLAC, JFK_TEXT, ServerProcess, decode_audio, espeak, normalize_words, silence, word_error_rate
from speech_corpus import LONG_SCRIPT, long_utterance, room_noise

SAMPLES_PER_CHUNK = 1024  # what Home Assistant sends


@pytest.fixture(scope="module")
def stt():
    server = ServerProcess("wyoming_stt", "--max-sessions", "4", "--http", "127.0.0.1:0").wait_ready()
    yield server
    assert server.terminate() == 0
    log = server.log()
    assert "Task exception was never retrieved" not in log
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def jfk_pcm() -> bytes:
    return decode_audio(JFK_FLAC)


async def transcribe(port, pcm, rate=16000, width=2, channels=1, *, language="en", pace=0.0, names=None,
                     chunk_bytes=None):
    """Home Assistant's sequence; returns (events after audio-stop, events before it)."""
    before: list = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language=language, transcript_names=names).event())
        await client.write_event(AudioStart(rate, width, channels).event())
        step = chunk_bytes or SAMPLES_PER_CHUNK * width * channels
        reader = asyncio.ensure_future(_collect(client, before)) if pace else None
        try:
            for i in range(0, len(pcm), step):
                await client.write_event(AudioChunk(rate, width, channels, pcm[i:i + step]).event())
                if pace:
                    await asyncio.sleep(SAMPLES_PER_CHUNK / rate / pace)
            early = list(before)
            await client.write_event(AudioStop().event())
        except ConnectionError:
            early = list(before)  # the server answered with an error and closed
        # Failure detection only (a hung server), never a speed target: generous for loaded CPUs.
        if reader is not None:
            await asyncio.wait_for(reader, 300)
            events = before
        else:
            events = []
            await asyncio.wait_for(_collect(client, events), 300)
        return events, early


async def _collect(client, events):
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed; got {[e.type for e in events]}"
        events.append(event)
        if event.type in ("transcript-stop", "error"):
            return


def final_text(events) -> str:
    texts = [e.data["text"] for e in events if e.type == "transcript"]
    assert len(texts) == 1, [e.type for e in events]
    return texts[0]


def test_describe_is_complete(stt):
    async def run():
        async with AsyncTcpClient("127.0.0.1", stt.port) as client:
            await client.write_event(Describe().event())
            return await client.read_event()

    info = Info.from_event(asyncio.run(run()))
    (program,) = info.asr
    assert program.installed and program.supports_transcript_streaming and program.version
    (model,) = program.models
    assert model.name == "tiny.en" and model.languages == ["en"] and model.installed
    assert model.attribution.name and model.attribution.url


def test_jfk_home_assistant_sequence(stt, jfk_pcm):
    events, _ = asyncio.run(transcribe(stt.port, jfk_pcm + silence(0.7)))
    types = [e.type for e in events]
    assert types[0] == "transcript-start"
    assert types[-2:] == ["transcript", "transcript-stop"]
    assert set(types[1:-2]) <= {"transcript-chunk"}
    assert word_error_rate(JFK_TEXT, final_text(events)) <= 0.1


def test_streaming_partials_arrive_while_audio_still_streams(stt, jfk_pcm):
    # Real time, as a microphone sends it (at 1.5x, a loaded machine left two partials at most).
    events, early = asyncio.run(transcribe(stt.port, jfk_pcm + silence(0.7), pace=1.0))
    assert any(e.type == "transcript-chunk" for e in early), "no partial before audio-stop"
    text = final_text(events)
    assert word_error_rate(JFK_TEXT, text) <= 0.1
    chunks = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    # Partials are deltas of words two decodes agreed on. The final is the plain decode of
    # the whole utterance and may still change a committed word ("my" heard as "am I"):
    # the partials are then close to the final's start, and no final delta is sent.
    said, final = normalize_words(chunks), normalize_words(text)
    if said[:len(final)] == final[:len(said)]:
        assert said == final  # consistent: chunks plus the final delta spell the final
    else:  # at most two words differ from the final's best-matching start
        edits = min(word_error_rate(" ".join(said), " ".join(final[:k])) * len(said)
                    for k in range(len(final) + 1))
        assert said and edits <= 2, (said, final)


def test_any_input_format_is_converted(stt):
    pcm44 = np.frombuffer(decode_audio(JFK_FLAC, rate=44100), dtype="<i2").astype(np.int32) << 16
    stereo32 = np.repeat(pcm44, 2).astype("<i4").tobytes()
    events, _ = asyncio.run(transcribe(stt.port, stereo32, rate=44100, width=4, channels=2))
    assert word_error_rate(JFK_TEXT, final_text(events)) <= 0.1

    pcm8k = np.frombuffer(espeak("turn on the kitchen light", rate=8000), dtype="<i2")
    unsigned8 = ((pcm8k.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()
    events, _ = asyncio.run(transcribe(stt.port, unsigned8, rate=8000, width=1))
    assert word_error_rate("turn on the kitchen light", final_text(events)) <= 0.2


def test_long_speech_keeps_every_utterance(stt):
    """43 s of ten commands from five voices with 1 s pauses of room noise: more than one
    30 s window. Every utterance is in the transcript (this lost 45% of the words once)."""
    speech = long_utterance()
    assert speech.seconds > 40
    events, _ = asyncio.run(transcribe(stt.port, speech.pcm + room_noise(0.7), pace=4))
    text = final_text(events)
    assert word_error_rate(speech.text, text) <= 0.1, text
    for _speaker, line in LONG_SCRIPT:
        if line:  # each generated command's rarest word is there
            assert max(normalize_words(line), key=len) in normalize_words(text), (line, text)


def _metric(stt, name: str) -> float:
    import re
    import urllib.request

    port = int(re.search(r"health and metrics on http://127.0.0.1:(\d+)", stt.log()).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        body = resp.read().decode()
    return float(re.search(rf"^{re.escape(name)}\S* (\S+)$", body, re.M).group(1))


def test_a_minute_of_speech_is_decoded_once(stt):
    """57 s sent as a file: one decode (a long transcript is not mistaken for a decoder loop
    and decoded again), every utterance in it."""
    speech = long_utterance(pause_s=0.5)
    pcm = decode_audio(JFK_FLAC) + room_noise(0.5) + speech.pcm
    before = _metric(stt, "wyoming_stt_decode_seconds_count")
    events, _ = asyncio.run(transcribe(stt.port, pcm))
    assert word_error_rate(f"{JFK_TEXT} {speech.text}", final_text(events)) <= 0.1
    assert _metric(stt, "wyoming_stt_decode_seconds_count") - before == 1


@pytest.mark.parametrize("chunk_bytes", [2009, 4099])
def test_chunks_that_split_samples_are_joined(stt, chunk_bytes):
    """Home Assistant's STT web API forwards the request body in pieces of any size."""
    pcm44 = np.frombuffer(decode_audio(JFK_FLAC, rate=44100), dtype="<i2")
    stereo = np.repeat(pcm44, 2).astype("<i2").tobytes()
    events, _ = asyncio.run(transcribe(stt.port, stereo, rate=44100, channels=2, chunk_bytes=chunk_bytes))
    assert word_error_rate(JFK_TEXT, final_text(events)) <= 0.1


@pytest.mark.parametrize(
    "text",
    ["turn off the living room lights", "what is the weather like tomorrow", "set a timer for ten minutes"],
)
def test_generated_commands(stt, text):
    events, _ = asyncio.run(transcribe(stt.port, silence(0.3) + espeak(text) + silence(0.7), pace=4))
    assert word_error_rate(text, final_text(events)) <= 0.2


def test_silence_and_noise_give_empty_transcripts(stt):
    events, _ = asyncio.run(transcribe(stt.port, silence(5)))
    assert final_text(events) == ""
    noise = (np.random.default_rng(1).normal(0, 0.03, 16000 * 3) * 32767).astype("<i2").tobytes()
    events, _ = asyncio.run(transcribe(stt.port, noise))
    assert final_text(events) == ""


def test_unsupported_language_is_an_error(stt, jfk_pcm):
    events, _ = asyncio.run(transcribe(stt.port, jfk_pcm[:32000], language="de"))
    assert events[-1].type == "error" and events[-1].data["code"] == "unsupported_language"


def test_transcript_names_are_accepted(stt):
    text = "turn on the lamp in the study"
    events, _ = asyncio.run(transcribe(stt.port, espeak(text), names=["Study Lamp", "Kitchen"]))
    assert word_error_rate(text, final_text(events)) <= 0.2


def test_concurrent_clients_and_describe_while_they_decode(stt):
    """Three clients send ~30 s of speech each at once (a burst: the whole decode starts at
    audio-stop and takes seconds); a describe sent after all their audio-stops is answered
    before any of their transcripts. Proven by order, not by a stopwatch: a decode that held
    up the event loop would put the info after a transcript, however fast the machine."""
    # Audio this server has never decoded (its window cache would answer a repeat at once):
    # the long utterance with other pauses than the other tests use.
    speeches = [long_utterance(pause_s=p, count=7) for p in (0.8, 0.9, 1.1)]
    arrivals: list[tuple[int | str, str]] = []

    async def one(name: int, pcm: bytes, stopped: asyncio.Future) -> list:
        async with AsyncTcpClient("127.0.0.1", stt.port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(16000, 2, 1).event())
            step = SAMPLES_PER_CHUNK * 2
            for i in range(0, len(pcm), step):
                await client.write_event(AudioChunk(16000, 2, 1, pcm[i:i + step]).event())
            await client.write_event(AudioStop().event())
            stopped.set_result(None)
            events: list = []
            while not events or events[-1].type not in ("transcript-stop", "error"):
                event = await client.read_event()
                assert event is not None, f"connection closed; got {[e.type for e in events]}"
                events.append(event)
                arrivals.append((name, event.type))
            return events

    async def run():
        loop = asyncio.get_running_loop()
        stopped = [loop.create_future() for _ in speeches]
        jobs = [asyncio.ensure_future(one(i, s.pcm + room_noise(0.7, seed=7 + i), stopped[i]))
                for i, s in enumerate(speeches)]
        await asyncio.wait_for(asyncio.gather(*stopped), 300)  # every audio-stop is out
        async with AsyncTcpClient("127.0.0.1", stt.port) as client:
            await client.write_event(Describe().event())
            reply = await asyncio.wait_for(client.read_event(), 300)
            arrivals.append(("describe", reply.type))
        return await asyncio.wait_for(asyncio.gather(*jobs), 300)

    results = asyncio.run(run())
    kinds = [kind for _, kind in arrivals]
    assert "info" in kinds, arrivals
    assert "transcript" not in kinds[:kinds.index("info")], f"describe waited for a decode: {arrivals}"
    for speech, events in zip(speeches, results):
        assert word_error_rate(speech.text, final_text(events)) <= 0.1, final_text(events)


def test_health_and_metrics(stt):
    import re
    import urllib.request

    port = int(re.search(r"health and metrics on http://127.0.0.1:(\d+)", stt.log()).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        body = resp.read().decode()
    assert 'wyoming_stt_requests_total{backend="faster-whisper"}' in body
    assert "wyoming_stt_latency_seconds_bucket" in body
    assert "wyoming_stt_active_sessions 0.0" in body
