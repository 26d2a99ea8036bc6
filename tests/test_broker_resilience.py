"""Outages and restarts: the MQTT broker restarted mid-session, settings across bridge restarts.

These tests own their Mosquitto, so the session's shared bridge cannot answer too.
"""

from __future__ import annotations

import pytest

from helpers import JFK_TEXT, word_error_rate
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Bridge, Mosquitto, Probe, jfk_pcm, run, send_audio, stt_server, tts_server,
)


@pytest.fixture
def own_broker():
    broker = Mosquitto(persistence=True)
    yield broker
    broker.close()


def test_broker_restart_mid_session_gives_error_then_service(own_broker, stt_server, jfk_pcm, tmp_path):
    bridge = Bridge(own_broker, "--stt", stt_server.uri, db=tmp_path / "s.sqlite3").start()
    device = dict(v5=False, client_id="den-device", clean=False)  # a persistent session survives the restart

    async def before_outage():
        async with Probe(own_broker, "voice/stt/den/+/result/#", "voice/site/den/busy", **device) as probe:
            await send_audio(probe, "den", "cut1", jfk_pcm[: 16000 * 2 * 2], stop=False)
            assert (await probe.next("voice/site/den/busy")).payload == b"ON"

    async def after_outage():
        async with Probe(own_broker, "voice/stt/den/+/result/#", "voice/status", **device) as probe:
            error = await probe.next("voice/stt/den/cut1/result/*", 60)
            # The cut session freed its site when the link dropped, before this error went out.
            await send_audio(probe, "den", "ok1", jfk_pcm)
            final = await probe.next("voice/stt/den/ok1/result/*", 60)
            return error, final

    try:
        run(before_outage())
        own_broker.restart()
        error, final = run(after_outage())
        assert error.topic.endswith("/result/error"), error.payload
        assert error.json()["code"] == "interrupted"
        assert final.topic.endswith("/result/final"), final.payload
        assert word_error_rate(JFK_TEXT, final.json()["text"]) == 0
        assert bridge.healthy()
    finally:
        assert bridge.stop() == 0
    log = bridge.log()
    assert "lost or refused" in log and log.count("connected to MQTT broker") >= 2
    assert "Traceback" not in log, log


def test_bridge_survives_broker_down_at_start(own_broker, stt_server, tmp_path):
    """Started while the broker is down: keeps retrying, healthy once it is back."""
    own_broker.stop()
    bridge = Bridge(own_broker, "--stt", stt_server.uri, db=tmp_path / "s.sqlite3")
    try:
        bridge.launch()
        bridge.wait_log("lost or refused", 2)  # up, refused, retrying (its word, not a sleep)
        assert bridge.health_status() == 503, f"healthy without a broker\n{bridge.log()}"
        own_broker.start()
        bridge.wait_healthy(60)
    finally:
        assert bridge.stop() == 0


def test_settings_survive_bridge_restart(own_broker, stt_server, tts_server, tmp_path):
    db = tmp_path / "settings.sqlite3"
    args = ("--stt", stt_server.uri, "--tts", tts_server.uri)

    async def configure():
        async with Probe(own_broker, "voice/site/den/#") as probe:
            await probe.publish("voice/site/den/settings/set", {"mode": "tts_only", "speed": 1.25, "voice": "joe"})
            first = await probe.next("voice/site/den/settings")
            await probe.publish("voice/site/den/settings/set", {"mode": "party"})
            error = await probe.next("voice/site/den/settings/error")
            await probe.publish("voice/site/den/settings/set", {"voice": None})
            second = await probe.next("voice/site/den/settings")
            # Drop the retained copy: after the restart it can only come from the bridge's database.
            await probe.publish("voice/site/den/settings", b"", retain=True)
            return first, error, second

    async def check():
        async with Probe(own_broker, "voice/site/den/settings", "voice/stt/den/+/result/#") as probe:
            restored = await probe.next("voice/site/den/settings")
            await probe.publish("voice/stt/den/s1/start", {"rate": 16000})
            refused = await probe.next("voice/stt/den/s1/result/*")
            return restored, refused

    bridge = Bridge(own_broker, *args, db=db).start()
    try:
        first, error, second = run(configure())
    finally:
        assert bridge.stop() == 0
    bridge = Bridge(own_broker, *args, db=db).start()
    try:
        restored, refused = run(check())
    finally:
        assert bridge.stop() == 0
    assert first.json() == {"mode": "tts_only", "voice": "joe", "speaker": None, "speed": 1.25, "language": None}
    assert error.json()["code"] == "invalid_request"
    assert second.json()["voice"] is None and second.json()["mode"] == "tts_only"
    assert restored.retain and restored.json() == second.json()
    assert refused.json()["code"] == "disabled"
