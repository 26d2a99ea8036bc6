"""The qwen3 backend (cloned voices) and voice profiles, on a tiny random Qwen3-TTS model.

The model (tests/qwen_tiny.py) has the real architecture and is saved in the official
layout, then served by `python -m wyoming_tts --backend qwen3 --qwen-model DIR` exactly as a
user's download would be. Its audio is noise, so what is checked is what is real: the
protocol, the frame-by-frame streaming (a sentence of n characters gives exactly
min(4096, 25 + 2n) - 1 frames of 1920 samples, in windows of 2 then 6 frames), profile
life cycle, the prompt cache and its persistence, concurrency, cancellation and every bad
profile. Skipped, with the reason, where torch or qwen-tts is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import wave

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from helpers import DATA
from tts_helpers import Reply, metrics, read_reply, run, start_tts, stop_tts

MISSING = [name for name in ("torch", "transformers", "qwen_tts") if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"the clone extra is not installed ({', '.join(MISSING)} missing): "
    "pip install '.[clone]' && pip install --no-deps qwen-tts==0.1.1")

REF_CLIP = DATA / "basic_ref_en.wav"
REF_TEXT = "Some call me nature, others call me mother nature."
UPSAMPLE = 1920
WINDOW_LONG = 100_000  # --samples-per-chunk: each decoded window is one audio-chunk event


def frames_for(text: str) -> int:
    """Frames the tiny model gives a one-piece text (it never says "end": the backend's bound)."""
    return min(4096, 25 + 2 * len(text)) - 1


def reference() -> tuple[np.ndarray, int]:
    with wave.open(str(REF_CLIP), "rb") as handle:
        rate = handle.getframerate()
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2"), rate


def as_format(samples: np.ndarray, rate: int, target: int, channels: int) -> bytes:
    """The clip resampled (linear) and duplicated into `channels`: a client's own format."""
    count = int(len(samples) * target / rate)
    out = np.interp(np.arange(count) * rate / target, np.arange(len(samples)), samples.astype(np.float64))
    return np.repeat(out.astype("<i2")[:, None], channels, axis=1).tobytes()


async def exchange(port: int, events: list[Event], until: tuple[str, ...]) -> Reply:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event)
        return await read_reply(client, Reply(), until)


def create_events(name, pcm: bytes, rate=24000, width=2, channels=1, transcript=REF_TEXT, language="en_US",
                  description=None, chunk=8192) -> list[Event]:
    data = {"name": name, "transcript": transcript, "language": language, "rate": rate, "width": width,
            "channels": channels}
    if description is not None:
        data["description"] = description
    events = [Event("voice-create", data), AudioStart(rate, width, channels).event()]
    events += [AudioChunk(rate, width, channels, pcm[i:i + chunk]).event() for i in range(0, len(pcm), chunk)]
    return events + [AudioStop().event()]


def create(port: int, name: str, pcm: bytes | None = None, **kwargs) -> Reply:
    if pcm is None:
        pcm = reference()[0].tobytes()
    return run(exchange(port, create_events(name, pcm, **kwargs), ("voice-created",)))


def describe(port: int) -> Info:
    async def ask() -> Info:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    return run(ask())


def speak(port: int, text: str, voice: str) -> Reply:
    event = Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event()
    return run(exchange(port, [event], ("audio-stop",)))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from qwen_tiny import save_tiny_model

    from wyoming_tts.backends.qwen3_imports import import_qwen_tts

    import_qwen_tts()  # the same import path (placeholders for sox/torchaudio) as the server
    return save_tiny_model(tmp_path_factory.mktemp("qwen3-tiny"))


def serve(model, voices, *extra: str):
    return start_tts("--backend", "qwen3", "--qwen-model", str(model), "--voice-profiles-dir", str(voices),
                     "--samples-per-chunk", str(WINDOW_LONG), "--workers", "4", "--max-sessions", "8", *extra)


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    voices = tmp_path_factory.mktemp("voices")
    proc = serve(tiny_model, voices)
    proc.voices = voices
    yield proc
    stop_tts(proc)


def test_the_tiny_model_has_the_real_layout_and_few_parameters(tiny_model):
    from qwen_tiny import parameter_count

    names = {p.name for p in tiny_model.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "vocab.json", "merges.txt",
            "tokenizer_config.json", "speech_tokenizer"} <= names
    assert {p.name for p in (tiny_model / "speech_tokenizer").iterdir()} >= {
        "config.json", "model.safetensors", "preprocessor_config.json"}
    assert json.loads((tiny_model / "config.json").read_text())["tts_model_type"] == "base"
    assert 100_000 < parameter_count(tiny_model) < 1_000_000


def test_a_profile_is_created_listed_spoken_with_streaming_and_deleted(server):
    samples, rate = reference()
    # the client's own format (44.1 kHz stereo); the service stores 24 kHz mono
    reply = create(server.port, "nature", as_format(samples, rate, 44100, 2), rate=44100, channels=2,
                   description="Mother nature, cloned")
    assert reply.types == ["voice-created"], reply.events
    assert reply.events[0].data == {"name": "nature", "languages": ["en_US"]}
    with wave.open(str(server.voices / "nature" / "reference.wav"), "rb") as stored:
        assert (stored.getframerate(), stored.getnchannels(), stored.getsampwidth()) == (24000, 1, 2)
    listed = {v.name: v for v in describe(server.port).tts[0].voices}
    assert listed["nature"].languages == ["en_US"] and listed["nature"].description == "Mother nature, cloned"

    text = "Hello there."
    spoken = speak(server.port, text, "nature")
    assert spoken.types[0] == "audio-start" and spoken.types[-1] == "audio-stop"
    assert set(spoken.types[1:-1]) == {"audio-chunk"}
    formats = {(e.data["rate"], e.data["width"], e.data["channels"]) for e in spoken.events[:-1]}
    assert formats == {(24000, 2, 1)}  # one format, 24 kHz
    # streamed window by window as frames were generated: 2 frames, then 6 at a time
    sizes = [len(e.payload) // 2 // UPSAMPLE for e in spoken.events if e.type == "audio-chunk"]
    total = frames_for(text)
    assert sum(sizes) == total and sizes[0] == 2 and set(sizes[1:-1]) == {6} and 0 < sizes[-1] <= 6
    assert len(sizes) == 1 + -(-(total - 2) // 6)

    deleted = run(exchange(server.port, [Event("voice-delete", {"name": "nature"})], ("voice-deleted",)))
    assert deleted.types == ["voice-deleted"] and deleted.events[0].data == {"name": "nature"}
    assert "nature" not in {v.name for v in describe(server.port).tts[0].voices}
    assert not (server.voices / "nature").exists()
    assert speak(server.port, text, "nature").error_code == "unknown_voice"


def test_cache_hits_skip_the_encoder_and_the_prompt_is_kept_beside_the_profile(server):
    before = metrics(server)
    assert create(server.port, "cached").types == ["voice-created"]
    for text in ("One.", "Two."):
        reply = speak(server.port, text, "cached")
        assert reply.types[-1] == "audio-stop" and len(reply.audio) == frames_for(text) * UPSAMPLE * 2
    after = metrics(server)

    def delta(name: str) -> float:
        return after[f"wyoming_tts_{name}"] - before.get(f"wyoming_tts_{name}", 0.0)

    assert delta("voice_prompt_encodes_total") == 1  # the second sentence used the cached prompt
    assert delta("voice_prompt_cache_misses_total") == 1 and delta("voice_prompt_cache_hits_total") >= 1
    assert [p.suffix for p in sorted((server.voices / "cached").glob("*.prompt"))] == [".prompt"]


def test_four_sessions_at_once(server):
    assert create(server.port, "quad").types == ["voice-created"]
    texts = ["Alpha.", "Bravo one.", "Charlie two.", "Delta three!"]

    async def all_four():
        return await asyncio.gather(*(
            exchange(server.port, [Synthesize(text=t, voice=SynthesizeVoice(name="quad")).event()], ("audio-stop",))
            for t in texts))

    for text, reply in zip(texts, run(all_four())):
        assert reply.types[0] == "audio-start" and reply.types[-1] == "audio-stop", reply.types
        assert len(reply.audio) == frames_for(text) * UPSAMPLE * 2


def test_a_client_that_leaves_stops_the_generation(server):
    assert create(server.port, "leaver").types == ["voice-created"]
    text = "This sentence is long enough to keep a tiny model busy for a good while, frame after frame."

    async def leave_at_first_audio():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="leaver")).event())
            return await read_reply(client, Reply(), ("audio-chunk",))

    first = run(leave_at_first_audio())
    assert first.types == ["audio-start", "audio-chunk"]
    # the server's own word: it stopped the talker before the sentence's last frame
    pattern = re.compile(r"qwen3: generation stopped after (\d+) of (\d+) frames")
    for _ in range(600):
        found = pattern.findall(server.log())
        if found:
            break
        run(asyncio.sleep(0.2))
    assert found, server.log()[-3000:]
    made, bound = map(int, found[-1])
    assert made < bound == frames_for(text) + 1
    # and serves the next request
    assert speak(server.port, "Still here.", "leaver").types[-1] == "audio-stop"


BAD = [
    ("too short", dict(seconds=2.0), "bad_request"),
    ("too long", dict(seconds=31.0), "too_large"),
    ("silence", dict(silent=True), "bad_request"),
    ("impossible width", dict(width=3), "invalid_format"),
    ("no transcript", dict(transcript=""), "bad_request"),
    ("no language", dict(language=[]), "bad_request"),
    ("path in the name", dict(name="../evil"), "bad_request"),
    ("slash in the name", dict(name="a/b"), "bad_request"),
    ("hidden name", dict(name=".hidden"), "bad_request"),
    ("duplicate", dict(name="taken"), "voice_exists"),
]


@pytest.mark.parametrize("case,change,code", BAD, ids=[b[0] for b in BAD])
def test_a_bad_profile_gets_a_clear_error_and_saves_nothing(server, case, change, code):
    if change.get("name") == "taken" and not (server.voices / "taken").exists():
        assert create(server.port, "taken").types == ["voice-created"]
    samples, rate = reference()
    seconds = change.pop("seconds", None)
    if seconds is not None:
        samples = np.resize(samples, int(seconds * rate))
    if change.pop("silent", False):
        samples = np.zeros_like(samples)
    width = change.pop("width", 2)
    pcm = samples.tobytes()
    name = change.pop("name", f"bad-{case.replace(' ', '-')}")
    before = sorted(p.name for p in server.voices.iterdir())
    reply = run(exchange(server.port, create_events(name, pcm, rate=rate, width=width, **change),
                         ("voice-created",)))
    assert reply.types == ["error"] and reply.error_code == code, reply.events
    assert sorted(p.name for p in server.voices.iterdir()) == before
    assert not (server.voices.parent / "evil").exists()


def test_deleting_an_unknown_voice_is_an_error(server):
    reply = run(exchange(server.port, [Event("voice-delete", {"name": "nobody"})], ("voice-deleted",)))
    assert reply.error_code == "unknown_voice"


def test_a_restart_reads_the_saved_prompt_and_a_changed_transcript_recomputes_it(tiny_model, tmp_path):
    voices = tmp_path / "voices"
    first = serve(tiny_model, voices)
    try:
        assert create(first.port, "keeper").types == ["voice-created"]
        assert speak(first.port, "Hi.", "keeper").types[-1] == "audio-stop"
        assert metrics(first)["wyoming_tts_voice_prompt_encodes_total"] == 1
    finally:
        stop_tts(first)

    # profiles added by hand while it was down: a 16 kHz stereo clip, and one without a transcript
    samples, rate = reference()
    for name, manifest in (("handmade", {"languages": ["en_US"], "transcript": REF_TEXT}),
                           ("broken", {"languages": ["en_US"]})):
        (voices / name).mkdir()
        (voices / name / "voice.json").write_text(json.dumps(manifest))
        with wave.open(str(voices / name / "reference.wav"), "wb") as handle:
            handle.setnchannels(2)
            handle.setsampwidth(2)
            handle.setframerate(16000)
            handle.writeframes(as_format(samples, rate, 16000, 2))

    second = serve(tiny_model, voices)  # its warm-up already needs a prompt: "handmade" or "keeper"
    try:
        names = [v.name for v in describe(second.port).tts[0].voices]
        assert names == ["handmade", "keeper"]  # "broken" is logged and left out
        assert "skipping voice profile" in second.log() and "broken" in second.log()
        with wave.open(str(voices / "handmade" / "reference.wav"), "rb") as stored:
            assert (stored.getframerate(), stored.getnchannels()) == (24000, 1)
        assert speak(second.port, "Hi.", "keeper").types[-1] == "audio-stop"
        values = metrics(second)
        # keeper's prompt was read from disk, never encoded; handmade's (the warm-up voice) was
        assert values["wyoming_tts_voice_prompt_loads_total"] == 1
        assert values["wyoming_tts_voice_prompt_encodes_total"] == 1
        assert list((voices / "handmade").glob("*.prompt"))
    finally:
        stop_tts(second)

    manifest = voices / "keeper" / "voice.json"
    changed = json.loads(manifest.read_text())
    changed["transcript"] = "Some call me nature."
    manifest.write_text(json.dumps(changed))
    third = serve(tiny_model, voices)
    try:
        assert speak(third.port, "Hi.", "keeper").types[-1] == "audio-stop"
        assert metrics(third)["wyoming_tts_voice_prompt_encodes_total"] == 1  # stale file: recomputed
    finally:
        stop_tts(third)


@pytest.fixture(scope="module")
def backend(tiny_model, tmp_path_factory):
    """The qwen3 backend loaded in this process, with its own profiles and prompt cache."""
    from prometheus_client import CollectorRegistry

    from wyoming_tts.backends.qwen3 import Qwen3Backend
    from wyoming_tts.config import Qwen3Config
    from wyoming_tts.voices import PromptCache, VoiceStore
    from wyoming_tts.voices.prompt_cache import PromptMetrics

    store = VoiceStore(tmp_path_factory.mktemp("in-process-voices"))
    loaded = Qwen3Backend(Qwen3Config(qwen_model=str(tiny_model)), store,
                          PromptCache(8, 1 << 20, PromptMetrics("t", CollectorRegistry())))
    loaded.load()
    return loaded


def test_the_prompt_cache_is_bounded_in_entries_and_bytes(backend):
    from prometheus_client import CollectorRegistry

    from wyoming_tts.voices import PromptCache
    from wyoming_tts.voices.prompt_cache import PromptMetrics

    samples, _rate = reference()
    profiles = [backend._store.create(f"bound-{i}", REF_TEXT, "en_US", None, samples.tobytes(), 24000, 2, 1)
                for i in range(3)]
    size = backend.prompt_nbytes(backend.encode_prompt(profiles[0]))

    registries = {"e": CollectorRegistry(), "b": CollectorRegistry()}

    def count(cache: PromptCache, name: str) -> float:
        prefix = "e" if cache is by_entries else "b"
        metric = {"evictions": "cache_evictions", "misses": "cache_misses", "hits": "cache_hits"}.get(name, name)
        return registries[prefix].get_sample_value(f"{prefix}_voice_prompt_{metric}_total") or 0.0

    by_entries = PromptCache(2, 1 << 30, PromptMetrics("e", registries["e"]))
    for profile in profiles + profiles[:1]:  # the 3rd evicts the 1st, which then misses again
        by_entries.prompt(profile, backend)
    assert len(by_entries) == 2 and count(by_entries, "evictions") == 2
    assert count(by_entries, "misses") == 4 and count(by_entries, "hits") == 0
    assert count(by_entries, "encodes") == 3 and count(by_entries, "loads") == 1  # the 1st came back from disk

    by_bytes = PromptCache(100, int(size * 1.5), PromptMetrics("b", registries["b"]))
    for profile in profiles[:2] + profiles[1:2]:
        by_bytes.prompt(profile, backend)
    assert len(by_bytes) == 1 and by_bytes.size == size <= by_bytes.max_bytes
    assert count(by_bytes, "evictions") == 1 and count(by_bytes, "hits") == 1


def test_the_talkers_rope_offsets_are_kept_per_thread(backend):
    """qwen-tts stores the running generation's rope offsets on the talker; concurrent
    requests (worker threads) must each see their own."""
    import threading

    talker = backend._model.model.talker
    talker.rope_deltas = "main"
    seen = []

    def other() -> None:
        seen.append(talker.rope_deltas)  # a new thread starts with none
        talker.rope_deltas = "other"
        seen.append(talker.rope_deltas)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [None, "other"] and talker.rope_deltas == "main"


def test_a_voice_recreated_under_the_same_name_is_not_served_from_the_audio_cache(server):
    before = metrics(server)
    for transcript in (REF_TEXT, "Some call me nature."):
        assert create(server.port, "again", transcript=transcript).types == ["voice-created"]
        assert speak(server.port, "Same words.", "again").types[-1] == "audio-stop"
        deleted = run(exchange(server.port, [Event("voice-delete", {"name": "again"})], ("voice-deleted",)))
        assert deleted.types == ["voice-deleted"]
    after = metrics(server)
    assert after["wyoming_tts_cache_misses_total"] - before["wyoming_tts_cache_misses_total"] == 2
    assert after["wyoming_tts_voice_prompt_encodes_total"] - before["wyoming_tts_voice_prompt_encodes_total"] == 2
