"""`--embedded-mqtt`: the bridge runs its own loopback MQTT 3.1.1 broker (amqtt) for first runs."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from helpers import JFK_TEXT, REPO, free_port, word_error_rate
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Bridge, Probe, audio_of, jfk_pcm, run, send_audio, stt_server, tts_server,
)


def test_embedded_broker_serves_stt_and_tts(stt_server, tts_server, jfk_pcm, tmp_path):
    embedded = SimpleNamespace(port=free_port())  # no Mosquitto: the bridge is the broker
    bridge = Bridge(embedded, "--embedded-mqtt", "--stt", stt_server.uri, "--tts", tts_server.uri,
                    db=tmp_path / "s.sqlite3").start()

    async def scenario():
        async with Probe(embedded, "voice/#", v5=False) as probe:
            status = await probe.next("voice/status", 60)
            await send_audio(probe, "attic", "e1", jfk_pcm)
            final = await probe.next("voice/stt/attic/e1/result/*", 60)
            await probe.publish("voice/tts/attic/e2/say", "Embedded broker works.")
            seen = await probe.until("voice/tts/attic/e2/result/done", 120)
            return status, final, seen

    try:
        status, final, seen = run(scenario())
    finally:
        assert bridge.stop() == 0, bridge.log()
    assert status.payload == b"online"
    assert final.topic.endswith("/final") and word_error_rate(JFK_TEXT, final.json()["text"]) == 0
    assert len(audio_of(seen)) > 10000
    log = bridge.log()
    assert "embedded MQTT broker" in log
    assert "Traceback" not in log, log


def test_embedded_broker_refuses_non_loopback():
    out = subprocess.run([sys.executable, "-m", "broker", "--embedded-mqtt", "--mqtt-host", "0.0.0.0"],
                         capture_output=True, text=True, cwd=REPO, timeout=30)
    assert out.returncode != 0 and "loopback" in out.stderr


def test_example_config_loads():
    from broker.config import OPTIONS, parse_config

    config = parse_config(["--config", str(REPO / "config" / "broker.toml")])
    text = (REPO / "config" / "broker.toml").read_text()
    for opt in OPTIONS:  # every option is documented in the example file
        assert f"{opt.name} =" in text, opt.name
    assert config.prefix == "voice" and config.mqtt_port == 1883
