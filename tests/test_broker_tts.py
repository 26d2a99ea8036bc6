"""Text to speech over MQTT: say (plain, JSON, v5), streamed text, and failover between services."""

from __future__ import annotations

import asyncio
import re
import urllib.request

from helpers import ServerProcess, word_error_rate
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Bridge, Probe, audio_of, bridge, mosquitto, run, send_audio, stt_server, tts_server,
)

SENTENCE = "The weather today is sunny and warm."


async def transcribe(probe: Probe, site: str, sid: str, pcm: bytes, rate: int) -> str:
    """Send synthesized audio back through the bridge's STT at its own rate."""
    await send_audio(probe, site, sid, pcm, rate=rate)
    return (await probe.next(f"voice/stt/{site}/{sid}/result/final")).json()["text"]


def test_say_plain_text_speaks_and_transcribes_back(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/tts/kitchen/#", "voice/stt/kitchen/+/result/#") as probe:
            await probe.publish("voice/tts/kitchen/say", SENTENCE)  # what Home Assistant's notify sends
            seen = await probe.until("voice/tts/kitchen/*/result/done")
            start = next(m for m in seen if m.topic.endswith("/result/start")).json()
            text = await transcribe(probe, "kitchen", "back1", audio_of(seen), start["rate"])
            return seen, start, text

    seen, start, text = run(scenario())
    assert start["rate"] == 22050 and start["width"] == 2 and start["channels"] == 1
    done = seen[-1].json()
    audio = audio_of(seen)
    assert done["bytes"] == len(audio) and done["chunks"] == sum(m.topic.endswith("/audio") for m in seen)
    assert 1000 < done["audio_ms"] < 6000
    assert all(len(m.payload) <= 4096 for m in seen if m.topic.endswith("/audio"))
    assert word_error_rate(SENTENCE, text) <= 0.25, text


def test_say_json_with_id_voice_and_v5_reply(bridge, mosquitto):
    async def say(probe, rid, speed):
        await probe.publish(f"voice/tts/kitchen/{rid}/say", {"text": SENTENCE, "speed": speed},
                            response_topic=f"voice/reply/tts/{rid}", correlation=rid.encode())
        seen = [await probe.next(f"voice/reply/tts/{rid}")]
        while seen[-1].type not in ("done", "error"):
            seen.append(await probe.next(f"voice/reply/tts/{rid}"))
        return seen

    async def scenario():
        async with Probe(mosquitto, "voice/reply/tts/#") as probe:
            return await say(probe, "r-normal", 1.0), await say(probe, "r-fast", 2.0)

    normal, fast = run(scenario())
    for seen, rid in ((normal, "r-normal"), (fast, "r-fast")):
        assert [m.type for m in seen][0] == "audio-start" and seen[-1].type == "done"
        assert {m.properties.CorrelationData for m in seen} == {rid.encode()}
        audio = [m for m in seen if m.type == "audio"]
        assert [int(m.user()["seq"]) for m in audio] == list(range(1, len(audio) + 1))
        assert audio[0].properties.ContentType == "audio/pcm;rate=22050;width=2;channels=1"
    # speed reaches the service: twice as fast is clearly shorter
    assert fast[-1].json()["audio_ms"] < 0.7 * normal[-1].json()["audio_ms"]


def test_streamed_text_starts_audio_before_the_text_ends(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/tts/kitchen/st1/result/#", "voice/stt/kitchen/+/result/#") as probe:
            await probe.publish("voice/tts/kitchen/st1/text/start", {})
            for word in "The weather today is ".split(" "):
                await probe.publish("voice/tts/kitchen/st1/text", word + " ")
            await probe.publish("voice/tts/kitchen/st1/text", "sunny and warm. ")
            first = await probe.next("voice/tts/kitchen/st1/result/*")  # before text/end
            await probe.publish("voice/tts/kitchen/st1/text", "Take a hat.")
            await probe.publish("voice/tts/kitchen/st1/text/end")
            seen = [first] + await probe.until("voice/tts/kitchen/st1/result/done")
            text = await transcribe(probe, "kitchen", "back2", audio_of(seen), first.json()["rate"])
            return seen, text

    seen, text = run(scenario())
    assert seen[0].topic.endswith("/result/start")
    assert word_error_rate(SENTENCE + " Take a hat.", text) <= 0.25, text


def test_first_text_chunk_opens_a_stream(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/tts/kitchen/st2/result/#") as probe:
            await probe.publish("voice/tts/kitchen/st2/text", "Hello from a language model.")
            await probe.publish("voice/tts/kitchen/st2/text/end")
            return await probe.until("voice/tts/kitchen/st2/result/done")

    seen = run(scenario())
    assert seen[0].topic.endswith("/result/start") and len(audio_of(seen)) > 22050


def _requests_served(server: ServerProcess, port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(v) for v in re.findall(r"^wyoming_tts_requests_total\{[^}]*\} (\S+)", text, re.M))


def test_two_tts_services_one_killed_mid_run(mosquitto, tmp_path):
    from helpers import free_port

    ports = [free_port(), free_port()]
    servers = [ServerProcess("wyoming_tts", "--http", f"127.0.0.1:{p}").wait_ready() for p in ports]
    bridge = Bridge(mosquitto, "--tts", servers[0].uri, "--tts", servers[1].uri, "--health-interval", "60",  # it learns of the death by failing
                    "--prefix", "failover",  # the session's shared bridge serves "voice/"
                    db=tmp_path / "s.sqlite3").start()
    sites = [f"room{i}" for i in range(4)]

    async def round_(probe, tag):
        for site in sites:
            await probe.publish(f"failover/tts/{site}/{tag}/say", {"text": "Lights are now on in the hall."})
        results = {}
        for _ in sites:
            msg = await probe.next(f"failover/tts/*/{tag}/result/[de]*")  # done or error
            results[msg.topic.split("/")[2]] = msg
        return results

    async def scenario():
        async with Probe(mosquitto, "failover/tts/+/+/result/done", "failover/tts/+/+/result/error") as probe:
            before = await round_(probe, "a")  # four at once: both services take a share
            share = [_requests_served(s, p) for s, p in zip(servers, ports)]
            for site in sites:  # requests in flight while one service dies
                await probe.publish(f"failover/tts/{site}/b/say", {"text": "The kitchen timer is done. " * 4})
            await asyncio.sleep(0.05)
            servers[0].proc.kill()
            during = {}
            for _ in sites:
                msg = await probe.next("failover/tts/*/b/result/[de]*")
                during[msg.topic.split("/")[2]] = msg
            after = await round_(probe, "c")  # the survivor serves everything
            return before, share, during, after, bridge.metrics()

    try:
        before, share, during, after, metrics = run(scenario())
        assert all(m.topic.endswith("/done") for m in before.values()), {k: m.payload for k, m in before.items()}
        assert all(n >= 1 for n in share), share
        # In flight: finished, moved to the other service, or (audio already sent) a clean error.
        for msg in during.values():
            assert msg.topic.endswith("/done") or msg.json()["code"] == "backend_error", msg.payload
        assert all(m.topic.endswith("/done") for m in after.values()), {k: m.payload for k, m in after.items()}
        assert re.search(r'^voice_broker_failovers_total\{backend="tts"\} [1-9]', metrics, re.M), metrics
    finally:
        assert bridge.stop() == 0
        servers[1].terminate()
        servers[0].terminate()
    assert "Traceback" not in bridge.log(), bridge.log()


def test_bridges_in_a_group_share_the_requests(mosquitto, tts_server, tmp_path):
    """Two bridges with --group: each request is served by exactly one of them."""
    args = ("--tts", tts_server.uri, "--prefix", "grp", "--group", "voice-bridge")
    bridges = [Bridge(mosquitto, *args, db=tmp_path / f"{i}.sqlite3").start() for i in range(2)]
    sites = [f"hall{i}" for i in range(4)]

    async def scenario():
        async with Probe(mosquitto, "grp/tts/+/+/result/#") as probe:
            for site in sites:
                await probe.publish(f"grp/tts/{site}/g1/say", "Shared work.")
            done = [await probe.next("grp/tts/*/g1/result/done", 120) for _ in sites]
            return done, await probe.quiet(1.0)

    try:
        done, extra = run(scenario())
        served = [sum(float(v) for v in re.findall(r'^voice_broker_requests_total\{backend="tts"\} (\S+)',
                                                     b.metrics(), re.M)) for b in bridges]
    finally:
        for b in bridges:
            assert b.stop() == 0, b.log()
    assert sorted(m.topic.split("/")[2] for m in done) == sites
    assert not [m.topic for m in extra if m.topic.endswith(("/start", "/done", "/error"))], "served twice"
    assert sum(served) == len(sites), served
