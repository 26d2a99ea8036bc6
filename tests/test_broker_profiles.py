"""Voice profiles (cloned voices) created and deleted through the bridge, over MQTT.

Real parts: a private Mosquitto (this module's own: no other bridge of the test session
answers these topics), the bridge process, and two real TTS services: the
qwen3 backend on the tiny random Qwen3-TTS model of tests/qwen_tiny.py (a service that
keeps voice profiles and says so in its `info`), and the bundled Piper voice (one that
keeps none, so it must never be asked). The reference clip is tests/data/basic_ref_en.wav,
decoded to 16 kHz and sent in messages of an odd byte count. Skipped, with the reason,
where torch or qwen-tts is not installed (the `clone` extra).
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json

import httpx
import pytest
from helpers import DATA, decode_audio, free_port, silence
from http_helpers import keys_cli
from mqtt_helpers import Bridge, Mosquitto, Probe, run, tts_server  # noqa: F401  (fixtures)
from test_broker_docs import run_example
from tts_helpers import start_tts, stop_tts
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe

MISSING = [name for name in ("torch", "transformers", "qwen_tts") if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"the clone extra is not installed ({', '.join(MISSING)} missing): "
    "pip install '.[clone]' && pip install --no-deps qwen-tts==0.1.1")

REF_TEXT = "Some call me nature, others call me mother nature."
RATE = 16000
#: Bytes per audio message: odd on purpose (messages are transport, not sample boundaries).
CHUNK = 3001


@pytest.fixture(scope="module")
def clip() -> bytes:
    return decode_audio(DATA / "basic_ref_en.wav", RATE)


@pytest.fixture(scope="module")
def cloning_tts(tiny_model, tmp_path_factory):
    server = cloning_server(tiny_model, tmp_path_factory.mktemp("voices"))
    yield server
    stop_tts(server)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from qwen_tiny import save_tiny_model

    from wyoming_tts.backends.qwen3_imports import import_qwen_tts

    import_qwen_tts()  # the import path the server takes (placeholders for sox/torchaudio)
    return save_tiny_model(tmp_path_factory.mktemp("qwen3-tiny"))


def cloning_server(model, voices):
    server = start_tts("--backend", "qwen3", "--qwen-model", str(model), "--voice-profiles-dir", str(voices))
    server.voices = voices
    return server


@pytest.fixture(scope="module")
def private_mosquitto():
    broker = Mosquitto()
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def profile_bridge(private_mosquitto, cloning_tts, tts_server):  # noqa: F811
    """The bridge with both fronts: MQTT, and HTTP on `bridge.api` with the key `bridge.key`."""
    api_port = free_port()
    bridge = Bridge(private_mosquitto, "--tts", cloning_tts.uri, "--tts", tts_server.uri, "--idle-timeout", "10",
                    "--api", f"127.0.0.1:{api_port}")
    bridge.api = f"http://127.0.0.1:{api_port}"
    bridge.plain_tts = tts_server.uri
    bridge.key = keys_cli(bridge.db, "create", "profiles")
    bridge.start()
    bridge.wait_log("is up (tts)", count=2)
    yield bridge
    assert bridge.stop() == 0, bridge.log()
    log = bridge.log()
    assert "Traceback" not in log, log
    assert REF_TEXT not in log  # transcripts never reach the log at INFO
    assert bridge.key not in log


def service_info(port: int) -> dict:
    """The TTS service's own `info`, as sent (with the keys wyoming's Info leaves out)."""
    async def ask() -> dict:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            while True:
                event: Event | None = await asyncio.wait_for(client.read_event(), 30)
                assert event is not None
                if event.type == "info":
                    return event.data

    return run(ask())


def service_voices(port: int) -> set[str]:
    return {v["name"] for program in service_info(port)["tts"] for v in program["voices"]}


async def create(probe: Probe, rid: str, pcm: bytes, *, stop: dict | None = None, **fields) -> tuple[str, dict]:
    """Create a profile over MQTT: start, the clip in CHUNK-byte messages, stop with the
    counts; returns (the result topic's last level, its payload)."""
    start = {"name": rid, "transcript": REF_TEXT, "language": "en_US", "rate": RATE, "width": 2, "channels": 1}
    start.update(fields)
    base = f"voice/profile/lab/{rid}"
    await probe.publish(f"{base}/start", {k: v for k, v in start.items() if v is not None})
    chunks = 0
    for i in range(0, len(pcm), CHUNK):
        await probe.publish(f"{base}/audio", pcm[i:i + CHUNK], qos=1)
        chunks += 1
    await probe.publish(f"{base}/stop", stop if stop is not None else {"chunks": chunks, "bytes": len(pcm)})
    return await result(probe, base)


async def result(probe: Probe, base: str) -> tuple[str, dict]:
    msg = await probe.next(f"{base}/result/*", timeout=120)
    return msg.topic.rsplit("/", 1)[1], msg.json()


async def bridge_lists(probe: Probe, name: str, present: bool) -> dict:
    """The first `voice/info` whose profile service lists `name` (or no longer does)."""
    while True:
        info = (await probe.next("voice/info", timeout=60)).json()
        keeping = [s for s in info["services"] if s["profiles"] is not None]
        if keeping and all((name in s["voices"] and name in s["profiles"]["voices"]) == present for s in keeping):
            return info


def test_a_profile_is_created_over_mqtt_listed_everywhere_and_deleted(profile_bridge, cloning_tts, clip):
    async def scenario():
        async with Probe(profile_bridge.broker, "voice/profile/lab/#", "voice/info", "voice/tts/lab/#") as probe:
            kind, created = await create(probe, "nature", clip, description="Mother nature, cloned",
                                         language=["en_US", "en_GB"])
            assert kind == "created", created
            assert created["name"] == "nature" and created["languages"] == ["en_US", "en_GB"]
            assert created["services"] == [cloning_tts.uri] and created["failed"] == []  # Piper was not asked
            assert created["audio_ms"] == round(len(clip) / (RATE * 2) * 1000)
            info = await bridge_lists(probe, "nature", present=True)
            plain = [s for s in info["services"] if s["uri"] == profile_bridge.plain_tts]
            assert plain and plain[0]["profiles"] is None and "nature" not in plain[0]["voices"]
            assert info["profiles"]["min_seconds"] == 3 and info["profiles"]["max_seconds"] == 30

            # a say with the cloned voice goes to the service that has it, not to Piper
            await probe.publish("voice/tts/lab/s1/say", {"text": "Hello.", "voice": "nature"})
            spoken = await probe.next("voice/tts/lab/s1/result/*", timeout=120)
            assert spoken.topic.endswith("/start"), spoken.payload
            assert spoken.json()["rate"] == 24000 and spoken.json()["voice"] == "nature"
            done = await probe.next("voice/tts/lab/s1/result/done", timeout=120)
            assert done.json()["bytes"] > 0

            await probe.publish("voice/profile/lab/d1/delete", {"name": "nature"})
            kind, deleted = await result(probe, "voice/profile/lab/d1")
            assert (kind, deleted) == ("deleted", {"name": "nature", "services": [cloning_tts.uri], "failed": []})
            await bridge_lists(probe, "nature", present=False)

    run(scenario())
    assert "nature" not in service_voices(cloning_tts.port)
    assert not (cloning_tts.voices / "nature").exists()


def test_the_service_marks_its_profiles_in_info_and_keeps_what_was_sent(profile_bridge, cloning_tts, clip):
    async def scenario(step: str) -> tuple[str, dict]:
        async with Probe(profile_bridge.broker, "voice/profile/lab/#") as probe:
            if step == "create":
                return await create(probe, "kept", clip)
            await probe.publish("voice/profile/lab/d5/delete", {"name": "kept"})
            return await result(probe, "voice/profile/lab/d5")

    assert run(scenario("create"))[0] == "created"
    marker = service_info(cloning_tts.port)["tts"][0]["voice_profiles"]
    assert "kept" in marker["voices"] and marker["editable"] is True
    manifest = json.loads((cloning_tts.voices / "kept" / "voice.json").read_text())
    assert manifest["transcript"] == REF_TEXT and manifest["languages"] == ["en_US"]
    assert run(scenario("delete"))[0] == "deleted"
    assert "kept" not in service_info(cloning_tts.port)["tts"][0]["voice_profiles"]["voices"]


BAD = [
    # (case, start fields, clip change, expected code, words in the message)
    ("short clip", {}, lambda pcm: pcm[: RATE * 2 * 2], "invalid_request", "too short"),
    ("silence", {}, lambda pcm: silence(5, RATE), "invalid_request", "silent"),
    ("missing transcript", {"transcript": None}, None, "invalid_request", "transcript"),
    ("path in the name", {"name": "../x"}, None, "invalid_request", "not allowed"),
    ("wrong format", {"width": 3}, None, "invalid_format", ""),
    ("long clip", {}, lambda pcm: pcm * 6, "too_large", "longer than 30"),
    ("half a frame", {}, lambda pcm: pcm + b"\x01", "invalid_format", "whole number of frames"),
]


@pytest.mark.parametrize(("case", "fields", "change", "code", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_error_and_saves_nothing(profile_bridge, cloning_tts, clip, case, fields, change,
                                                         code, words):
    before = sorted(p.name for p in cloning_tts.voices.iterdir())
    pcm = change(clip) if change else clip
    rid = "bad-" + "".join(ch for ch in case if ch.isalnum())

    async def scenario():
        async with Probe(profile_bridge.broker, "voice/profile/lab/#") as probe:
            return await create(probe, rid, pcm, **{"name": rid, **fields})

    kind, payload = run(scenario())
    assert (kind, payload["code"]) == ("error", code), payload
    assert words in payload["message"]
    assert sorted(p.name for p in cloning_tts.voices.iterdir()) == before
    assert rid not in service_voices(cloning_tts.port)


def test_a_cancelled_or_lossy_upload_saves_nothing(profile_bridge, cloning_tts, clip):
    before = sorted(p.name for p in cloning_tts.voices.iterdir())

    async def scenario():
        async with Probe(profile_bridge.broker, "voice/profile/lab/#") as probe:
            lossy = await create(probe, "lossy", clip, stop={"chunks": 10_000})
            base = "voice/profile/lab/cancelled"
            await probe.publish(f"{base}/start", {"name": "cancelled", "transcript": REF_TEXT, "language": "en_US",
                                                  "rate": RATE})
            await probe.publish(f"{base}/audio", clip[:CHUNK])
            await probe.publish(f"{base}/cancel", b"")
            return lossy, await result(probe, base)

    (kind1, lossy), (kind2, cancelled) = run(scenario())
    assert (kind1, lossy["code"]) == ("error", "audio_lost"), lossy
    assert (kind2, cancelled["code"]) == ("error", "cancelled"), cancelled
    assert sorted(p.name for p in cloning_tts.voices.iterdir()) == before


def test_a_duplicate_name_is_refused_and_the_first_profile_stays(profile_bridge, cloning_tts, clip):
    async def scenario():
        async with Probe(profile_bridge.broker, "voice/profile/lab/#") as probe:
            first = await create(probe, "twice", clip)
            second = await create(probe, "twice", clip[: len(clip) // 2 * 2 - RATE * 2], transcript="Other words.")
            await probe.publish("voice/profile/lab/d2/delete", {"name": "twice"})
            return first, second, await result(probe, "voice/profile/lab/d2")

    first, second, deleted = run(scenario())
    assert first[0] == "created"
    assert second[0] == "error" and second[1]["code"] == "voice_exists", second
    assert deleted[0] == "deleted"


def test_deleting_an_unknown_voice_or_a_path_is_an_error(profile_bridge, cloning_tts):
    async def scenario():
        async with Probe(profile_bridge.broker, "voice/profile/lab/#") as probe:
            answers = []
            for rid, name in (("d3", "nobody"), ("d4", "../voices")):
                await probe.publish(f"voice/profile/lab/{rid}/delete", {"name": name})
                answers.append(await result(probe, f"voice/profile/lab/{rid}"))
            return answers

    (kind1, unknown), (kind2, path) = run(scenario())
    assert (kind1, unknown["code"]) == ("error", "unknown_voice"), unknown
    assert (kind2, path["code"]) == ("error", "invalid_request"), path
    assert cloning_tts.voices.is_dir()


def test_results_go_to_the_v5_response_topic_with_the_correlation_data(profile_bridge, cloning_tts, clip):
    async def scenario():
        async with Probe(profile_bridge.broker, "voice/reply/me/#", "voice/profile/lab/#") as probe:
            base = "voice/profile/lab/v5"
            await probe.publish(f"{base}/start", {"name": "replied", "transcript": REF_TEXT, "language": "en_US",
                                                  "rate": RATE}, response_topic="voice/reply/me/v5",
                                correlation=b"corr-1")
            for i in range(0, len(clip), CHUNK):
                await probe.publish(f"{base}/audio", clip[i:i + CHUNK], qos=1)
            await probe.publish(f"{base}/stop", {})
            created = await probe.next("voice/reply/me/v5", timeout=120)
            await probe.publish("voice/profile/lab/v5d/delete", {"name": "replied"},
                                response_topic="voice/reply/me/v5d")
            deleted = await probe.next("voice/reply/me/v5d", timeout=120)
            return created, deleted

    created, deleted = run(scenario())
    assert created.type == "voice-created" and created.properties.CorrelationData == b"corr-1"
    assert created.json()["name"] == "replied"
    assert deleted.type == "voice-deleted" and deleted.json()["services"] == [cloning_tts.uri]


def test_the_documented_example_clones_a_voice(profile_bridge, cloning_tts, tmp_path):
    (tmp_path / "voice.raw").write_bytes(decode_audio(DATA / "basic_ref_en.wav", 24000))
    created = json.loads(run_example("profile", profile_bridge.broker, tmp_path))
    assert created["name"] == "grandma" and created["services"] == [cloning_tts.uri], created
    assert "grandma" in service_voices(cloning_tts.port)

    async def delete() -> tuple[str, dict]:
        async with Probe(profile_bridge.broker, "voice/profile/kitchen/#") as probe:
            await probe.publish("voice/profile/kitchen/p2/delete", {"name": "grandma"})
            return await result(probe, "voice/profile/kitchen/p2")

    assert run(delete())[0] == "deleted"


# -- HTTP ------------------------------------------------------------------------------------
def http(bridge, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bridge.key}"}
    return httpx.request(method, bridge.api + path, headers=headers, timeout=120, **kwargs)


def flac(pcm: bytes, rate: int) -> bytes:
    """16-bit mono PCM as a FLAC file (a format the upload is decoded from)."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def upload(bridge, name: str, data: bytes, **fields: str) -> httpx.Response:
    form = {"name": name, "transcript": REF_TEXT, "language": "en_US", **fields}
    return http(bridge, "POST", "/api/v1/voices", data={k: v for k, v in form.items() if v is not None},
                files={"file": ("clip.flac", data, "audio/flac")})


def listed(bridge) -> dict[str, dict]:
    answer = http(bridge, "GET", "/api/v1/voices")
    assert answer.status_code == 200, answer.text
    return {v["name"]: v for v in answer.json()["voices"]}


def test_a_profile_is_uploaded_in_any_format_listed_and_deleted_over_http(profile_bridge, cloning_tts, clip):
    created = upload(profile_bridge, "uploaded", flac(clip, RATE), language="en_US, de_DE",
                     description="From a FLAC file")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "uploaded" and body["languages"] == ["en_US", "de_DE"]
    assert body["services"] == [cloning_tts.uri] and body["failed"] == []
    voices = listed(profile_bridge)  # the services were described again before the answer
    assert voices["uploaded"]["kind"] == "profile" and voices["uploaded"]["languages"] == ["en_US", "de_DE"]
    assert {v["kind"] for name, v in voices.items() if name != "uploaded"} == {"builtin"}  # Piper's
    assert "uploaded" in service_voices(cloning_tts.port)

    deleted = http(profile_bridge, "DELETE", "/api/v1/voices/uploaded")
    assert deleted.status_code == 200 and deleted.json()["services"] == [cloning_tts.uri], deleted.text
    assert "uploaded" not in listed(profile_bridge)
    again = http(profile_bridge, "DELETE", "/api/v1/voices/uploaded")
    assert (again.status_code, again.json()["error"]["code"]) == (404, "unknown_voice")


HTTP_BAD = [
    # (case, name, file, form changes, status, code)
    ("path in the name", "..x", None, {}, 400, "invalid_request"),
    ("missing transcript", "notext", None, {"transcript": None}, 400, "invalid_request"),
    ("not audio", "text", b"these are not the bytes of an audio file", {}, 400, "invalid_format"),
    ("short clip", "short", "short", {}, 400, "invalid_request"),
    ("silence", "quiet", "silence", {}, 400, "invalid_request"),
]


@pytest.mark.parametrize(("case", "name", "data", "fields", "status", "code"), HTTP_BAD,
                         ids=[b[0] for b in HTTP_BAD])
def test_a_bad_upload_is_refused_with_the_apis_error_and_saves_nothing(profile_bridge, cloning_tts, clip, case,
                                                                        name, data, fields, status, code):
    before = sorted(p.name for p in cloning_tts.voices.iterdir())
    files = {None: flac(clip, RATE), "short": flac(clip[: RATE * 2 * 2], RATE),
             "silence": flac(silence(5, RATE), RATE)}
    answer = upload(profile_bridge, name, files.get(data, data), **fields)  # type: ignore[arg-type]
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert sorted(p.name for p in cloning_tts.voices.iterdir()) == before


def test_a_duplicate_upload_is_a_conflict_and_a_keyless_one_unauthorized(profile_bridge, clip):
    assert upload(profile_bridge, "dup", flac(clip, RATE)).status_code == 201
    second = upload(profile_bridge, "dup", flac(clip, RATE))
    assert (second.status_code, second.json()["error"]["code"]) == (409, "voice_exists"), second.text
    keyless = httpx.delete(profile_bridge.api + "/api/v1/voices/dup", timeout=60)
    assert keyless.status_code == 401
    assert http(profile_bridge, "DELETE", "/api/v1/voices/dup").status_code == 200


# -- several services that keep profiles (the core driven directly) ---------------------------
def test_every_service_that_keeps_profiles_gets_it_and_one_refusing_does_not_undo_the_others(
        cloning_tts, tiny_model, tmp_path, clip):
    from broker.config import parse_config
    from broker.core.core import Core
    from broker.core.metrics import BrokerMetrics
    from broker.core.payloads import Stop, VoiceProfileRequest
    from broker.core.results import ProfileDeleted, ProfileSaved
    from broker.core.services import ServicePool
    from broker.core.settings import SettingsStore

    other = cloning_server(tiny_model, tmp_path / "other-voices")
    try:
        # the other service has a profile of that name already: it refuses, the first saves
        twin = {"name": "twin", "transcript": REF_TEXT, "language": "en_US", "rate": RATE}

        async def scenario() -> list:
            config = parse_config(["--tts", cloning_tts.uri, "--tts", other.uri, "--db", str(tmp_path / "db")])
            metrics = BrokerMetrics()
            pool = ServicePool(config.connect_timeout, metrics)
            for uri in (cloning_tts.uri, other.uri):
                await pool.check(pool.add(uri, "static", expect="tts"))
            core = Core(config, pool, SettingsStore(config.db), metrics)
            results = []
            for _attempt in range(2):  # the first saves on one service; the second on none
                sink = _Collect()
                session = core.open_voice_create(VoiceProfileRequest.parse(twin), sink)
                for i in range(0, len(clip), CHUNK):
                    session.feed(clip[i:i + CHUNK])
                session.stop(Stop.now())
                await asyncio.wait_for(session.task, 120)
                results.append(sink.results)
            sink = _Collect()
            session = core.open_voice_delete("twin", sink)
            await asyncio.wait_for(session.task, 120)
            results.append(sink.results)
            await core.close()
            await pool.close()
            core.store.close()
            return results

        # on `other` alone first (through its own Wyoming port), then through the bridge's core
        assert _wyoming_create(other.port, "twin", clip) == "voice-created"
        first, second, deleted = run(scenario())
    finally:
        stop_tts(other)
    (saved,) = first
    assert isinstance(saved, ProfileSaved) and saved.services == (cloning_tts.uri,), saved
    assert [(r.service, r.code) for r in saved.failed] == [(other.uri, "voice_exists")]
    (again,) = second  # now both have it: every service refuses, the answer is the telling one
    assert again.code == "voice_exists", again
    (gone,) = deleted
    assert isinstance(gone, ProfileDeleted) and set(gone.services) == {cloning_tts.uri, other.uri}, gone
    assert not (cloning_tts.voices / "twin").exists() and not (tmp_path / "other-voices" / "twin").exists()


class _Collect:
    def __init__(self) -> None:
        self.results: list = []

    async def send(self, result) -> None:
        self.results.append(result)


def _wyoming_create(port: int, name: str, pcm: bytes) -> str:
    """Create a profile on one TTS service directly (voice-create, the clip, audio-stop)."""
    from wyoming.audio import AudioChunk, AudioStart, AudioStop

    from voice_common.voice_events import VoiceCreate

    async def go() -> str:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(VoiceCreate(name, REF_TEXT, "en_US", RATE, 2, 1).event())
            await client.write_event(AudioStart(RATE, 2, 1).event())
            for i in range(0, len(pcm), 32000):
                await client.write_event(AudioChunk(RATE, 2, 1, pcm[i:i + 32000]).event())
            await client.write_event(AudioStop().event())
            event = await asyncio.wait_for(client.read_event(), 60)
            assert event is not None
            return event.type

    return run(go())
