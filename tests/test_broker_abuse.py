"""Bad input and abuse: every refusal is a clear error result or a counted drop, never a crash."""

from __future__ import annotations

import json
import re
import time

from helpers import free_port
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Bridge, Probe, bridge, jfk_pcm, mosquitto, run, send_audio, stt_server, tts_server,
)


def metric(bridge: Bridge, name: str, **labels: str) -> float:
    pattern = name + (r"\{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + r"\}" if labels else "")
    match = re.search("^" + pattern + r" (\S+)$", bridge.metrics(), re.M)
    return float(match.group(1)) if match else 0.0


async def processed(probe: Probe, sid: str) -> list:
    """Everything received until the bridge has handled all that `probe` published before.

    A sentinel request (bad JSON, answered at once with an error) goes last; the bridge handles
    one client's messages in order, so its answer means the earlier ones are done: no waiting
    for a quiet spell that a loaded machine may not give.
    """
    await probe.publish(f"voice/stt/kitchen/{sid}/start", b"{sentinel")
    return await probe.until(f"voice/stt/kitchen/{sid}/result/error", 60)


async def error_of(probe: Probe, topic: str, payload, **props) -> dict:
    """Publish a request and return the error result for it."""
    await probe.publish(topic, payload, **props)
    base = topic.rsplit("/", 1)[0]
    msg = await probe.next(f"{base}/result/*", 60)
    assert msg.topic.endswith("/result/error"), (msg.topic, msg.payload)
    return msg.json()


def test_bad_ids_and_retained_requests_are_dropped(bridge, mosquitto):
    before = {r: metric(bridge, "voice_broker_dropped_total", reason=r) for r in ("bad_id", "retained")}

    async def scenario():
        async with Probe(mosquitto, "voice/#") as probe:
            for topic in ("voice/stt/kit.chen/s1/start", f"voice/stt/kitchen/{'x' * 65}/start",
                          "voice/tts/küche/say", "voice/tts/kitchen/a b/say"):
                await probe.publish(topic, {"text": "hello"})
            await probe.publish("voice/tts/kitchen/ret1/say", "retained hello", retain=True)
            await probe.publish("voice/tts/kitchen/ret1/say", b"", retain=True)  # clean up
            return await processed(probe, "sentinel-ids")

    seen = run(scenario())
    assert not [m.topic for m in seen if "/result/" in m.topic and "sentinel" not in m.topic]
    after = {r: metric(bridge, "voice_broker_dropped_total", reason=r) for r in before}
    assert after["bad_id"] - before["bad_id"] == 4
    assert after["retained"] - before["retained"] == 2  # the request and the empty one clearing it


def test_invalid_stt_requests(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/+/result/#") as probe:
            start = "voice/stt/kitchen/{}/start"
            codes = {
                "not_json": await error_of(probe, start.format("a1"), b"{nope"),
                "array": await error_of(probe, start.format("a2"), b"[1, 2]"),
                "rate": await error_of(probe, start.format("a3"), {"rate": 12345}),
                "width": await error_of(probe, start.format("a4"), {"width": 3}),
                "language": await error_of(probe, start.format("a5"), {"language": "en; rm -rf"}),
                "huge": await error_of(probe, start.format("a6"), {"pad": "x" * 9000}),
            }
            # Audio that is not a whole number of frames at stop (odd chunks alone are fine).
            await probe.publish("voice/stt/kitchen/b1/start", {"rate": 16000})
            await probe.publish("voice/stt/kitchen/b1/audio", b"\x00\x01\x02", qos=0)
            await probe.publish("voice/stt/kitchen/b1/stop", {})
            codes["odd_chunk"] = (await probe.next("voice/stt/kitchen/b1/result/*")).json()
            # One chunk over --max-chunk-bytes (65536).
            await probe.publish("voice/stt/kitchen/b4/start", {"rate": 16000})
            await probe.publish("voice/stt/kitchen/b4/audio", b"\0" * 65538, qos=0)
            codes["big_chunk"] = (await probe.next("voice/stt/kitchen/b4/result/*")).json()
            # Longer than --max-audio-seconds 20.
            await send_audio(probe, "kitchen", "b2", b"\0" * (16000 * 2 * 21), chunk_ms=200, stop=False)
            codes["too_long"] = (await probe.next("voice/stt/kitchen/b2/result/*")).json()
            # Silence after start: --idle-timeout 2 (never sooner; the wait only detects a hang).
            started = time.monotonic()
            await probe.publish("voice/stt/kitchen/b3/start", {"rate": 16000})
            codes["idle"] = (await probe.next("voice/stt/kitchen/b3/result/*", 60)).json()
            return codes, time.monotonic() - started

    codes, idle_s = run(scenario())
    assert idle_s >= 2.0 and "nothing received for 2 s" in codes["idle"]["message"], (idle_s, codes["idle"])
    assert {k: v["code"] for k, v in codes.items()} == {
        "not_json": "invalid_request", "array": "invalid_request", "rate": "invalid_format",
        "width": "invalid_format", "language": "invalid_request", "huge": "too_large",
        "odd_chunk": "invalid_format", "big_chunk": "too_large", "too_long": "too_large", "idle": "timeout",
    }
    assert all(v["message"] for v in codes.values())


def test_one_session_per_site_and_global_cap(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/stt/+/+/result/#") as probe:
            await probe.publish("voice/stt/cap0/s1/start", {"rate": 16000})
            same_site = await error_of(probe, "voice/stt/cap0/s2/start", {"rate": 16000})
            for i in range(1, 4):  # --max-sessions 4
                await probe.publish(f"voice/stt/cap{i}/s1/start", {"rate": 16000})
            over_cap = await error_of(probe, "voice/stt/cap9/s1/start", {"rate": 16000})
            for i in range(4):
                await probe.publish(f"voice/stt/cap{i}/s1/cancel")
            ends = [await probe.next("voice/stt/cap*/s1/result/*") for _ in range(4)]
            # A session's slot is free before its result is out: no pause needed.
            await probe.publish("voice/stt/cap9/s2/start", {"rate": 16000})  # room again
            await probe.publish("voice/stt/cap9/s2/cancel")
            again = (await probe.next("voice/stt/cap9/s2/result/*")).json()
            return same_site, over_cap, ends, again

    same_site, over_cap, ends, again = run(scenario())
    assert same_site["code"] == "busy" and over_cap["code"] == "busy"
    assert {m.json()["code"] for m in ends} == {"cancelled"}
    assert again["code"] == "cancelled"  # admitted, then cancelled: the slots were given back


def test_reply_property_rules(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/+/result/#", "elsewhere/#") as probe:
            outside = await error_of(probe, "voice/stt/kitchen/p1/start", {"rate": 16000},
                                     response_topic="elsewhere/steal")
            long_corr = await error_of(probe, "voice/stt/kitchen/p2/start", {"rate": 16000},
                                       response_topic="voice/reply/p2", correlation=b"x" * 300)
            stray = await probe.quiet(0.5)
            return outside, long_corr, stray

    outside, long_corr, stray = run(scenario())
    assert outside["code"] == "invalid_request" and "Response Topic" in outside["message"]
    assert long_corr["code"] == "invalid_request"
    assert not [m for m in stray if m.topic.startswith("elsewhere/")]


def test_invalid_tts_requests_and_expiry(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/tts/kitchen/+/result/#") as probe:
            codes = {
                "too_long": await error_of(probe, "voice/tts/kitchen/t1/say", {"text": "word " * 120}),
                "empty": await error_of(probe, "voice/tts/kitchen/t2/say", {"text": "  "}),
                "no_text": await error_of(probe, "voice/tts/kitchen/t3/say", {"voice": "joe"}),
                "speed": await error_of(probe, "voice/tts/kitchen/t4/say", {"text": "hi", "speed": 40}),
                "voice": await error_of(probe, "voice/tts/kitchen/t5/say", {"text": "hi", "voice": ["x"]}),
                "not_utf8": await error_of(probe, "voice/tts/kitchen/t6/say", b"\xff\xfe"),
            }
            await probe.publish("voice/tts/kitchen/say", {"text": "hi", "id": "../etc"})
            codes["bad_id"] = (await probe.next("voice/tts/kitchen/*/result/error")).json()
            # A streamed text that goes silent (--idle-timeout 2; the wait only detects a hang).
            await probe.publish("voice/tts/kitchen/t7/text", "Hello and then nothing")
            codes["idle"] = (await probe.next("voice/tts/kitchen/t7/result/*", 60)).json()
            # Message Expiry: the results carry what is left of it.
            await probe.publish("voice/tts/kitchen/t8/say", "Hello.", expiry=30)
            start = await probe.next("voice/tts/kitchen/t8/result/start")
            return codes, start

    codes, start = run(scenario())
    assert {k: v["code"] for k, v in codes.items()} == {
        "too_long": "too_large", "empty": "invalid_request", "no_text": "invalid_request",
        "speed": "invalid_request", "voice": "invalid_request", "not_utf8": "invalid_request",
        "bad_id": "invalid_request", "idle": "timeout",
    }
    assert 0 < start.properties.MessageExpiryInterval <= 30


def test_disabled_site_and_unknown_settings(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "voice/site/attic/#", "voice/stt/attic/+/result/#",
                         "voice/tts/attic/+/result/#") as probe:
            await probe.publish("voice/site/attic/settings/set", {"colour": "blue"})
            unknown = (await probe.next("voice/site/attic/settings/error")).json()
            await probe.publish("voice/site/attic/settings/set", {"mode": "disabled"})
            await probe.next("voice/site/attic/settings")
            stt = await error_of(probe, "voice/stt/attic/d1/start", {"rate": 16000})
            tts = await error_of(probe, "voice/tts/attic/d2/say", "hello")
            return unknown, stt, tts

    unknown, stt, tts = run(scenario())
    assert unknown["code"] == "invalid_request" and "colour" in unknown["message"]
    assert stt["code"] == "disabled" and tts["code"] == "disabled"


def test_audio_for_unknown_session_is_dropped(bridge, mosquitto):
    before = metric(bridge, "voice_broker_dropped_total", reason="no_session")

    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/+/result/#") as probe:
            for _ in range(5):
                await probe.publish("voice/stt/kitchen/ghost/audio", b"\0" * 640, qos=0)
            await probe.publish("voice/stt/kitchen/ghost/stop", {"chunks": 5})
            return await processed(probe, "sentinel-ghost")

    assert not [m.topic for m in run(scenario()) if "sentinel" not in m.topic]
    assert metric(bridge, "voice_broker_dropped_total", reason="no_session") - before == 6


def test_no_service_is_service_unavailable(mosquitto, tmp_path):
    dead = f"tcp://127.0.0.1:{free_port()}"
    bridge = Bridge(mosquitto, "--stt", dead, "--tts", dead, "--prefix", "nosvc", "--connect-timeout", "1",
                    db=tmp_path / "s.sqlite3").start()

    async def scenario():
        async with Probe(mosquitto, "nosvc/#") as probe:
            info = json.loads((await probe.next("nosvc/info")).payload)
            await probe.publish("nosvc/stt/kitchen/n1/start", {"rate": 16000})
            stt = (await probe.next("nosvc/stt/kitchen/n1/result/*")).json()
            await probe.publish("nosvc/tts/kitchen/n2/say", "hello")
            tts = (await probe.next("nosvc/tts/kitchen/n2/result/*")).json()
            return info, stt, tts

    try:
        info, stt, tts = run(scenario())
    finally:
        assert bridge.stop() == 0
    assert [s["healthy"] for s in info["services"]] == [False]
    assert stt["code"] == "service_unavailable" and tts["code"] == "service_unavailable"
    assert "Traceback" not in bridge.log()
