"""Security: TLS with a client certificate, refused credentials, and nothing retained but state."""

from __future__ import annotations

import fnmatch

from mqtt_helpers import (  # noqa: F401  (fixtures)
    Bridge, Probe, audio_of, bridge, jfk_pcm, mosquitto, retained_then, run, send_audio, stt_server, tts_server,
)

#: The only topics the bridge may leave retained on the broker (busy: the state of the
#: sites announced to Home Assistant, never a request or a result).
RETAINED_OK = ("*/status", "*/info", "*/site/*/settings", "*/site/*/busy")


def test_tls_listener_with_client_certificate(mosquitto, tts_server, tmp_path):
    certs = mosquitto.dir
    bridge = Bridge(mosquitto, "--tts", tts_server.uri, "--prefix", "tls", "--mqtt-tls",
                    "--mqtt-port", str(mosquitto.tls_port), "--mqtt-ca", str(certs / "ca.crt"),
                    "--mqtt-cert", str(certs / "client.crt"), "--mqtt-key", str(certs / "client.key"),
                    db=tmp_path / "s.sqlite3").start()

    async def scenario():
        async with Probe(mosquitto, "tls/tts/desk/+/result/#") as probe:
            await probe.publish("tls/tts/desk/t1/say", "Secure hello.")
            return await probe.until("tls/tts/desk/t1/result/done", 120)

    try:
        seen = run(scenario())
    finally:
        assert bridge.stop() == 0
    assert seen[0].topic.endswith("/result/start") and len(audio_of(seen)) > 10000
    assert f"connected to MQTT broker 127.0.0.1:{mosquitto.tls_port}" in bridge.log()


def test_refused_credentials_and_missing_client_certificate(mosquitto, tmp_path):
    """Wrong password, or TLS without the client certificate the listener demands: never healthy, no crash."""
    wrong = Bridge(mosquitto, "--prefix", "nope", env={"BROKER_MQTT_PASSWORD": "wrong"}, db=tmp_path / "a.sqlite3")
    no_cert = Bridge(mosquitto, "--prefix", "nope", "--mqtt-tls", "--mqtt-port", str(mosquitto.tls_port),
                     "--mqtt-ca", str(mosquitto.dir / "ca.crt"), db=tmp_path / "b.sqlite3")
    for bridge, refusal in ((wrong, "lost or refused"), (no_cert, "certificate required")):
        try:
            bridge.launch()
            # Refused twice (it keeps retrying with backoff), and unhealthy after that: judged by
            # the bridge's own log and /healthz, not by how long it took to give up.
            bridge.wait_log(refusal, 2)
            assert bridge.health_status() == 503, f"connected anyway\n{bridge.log()}"
        finally:
            assert bridge.stop() == 0, bridge.log()
        assert "Traceback" not in bridge.log(), bridge.log()
        assert "connected to MQTT broker" not in bridge.log(), bridge.log()
    assert "authoriz" in wrong.log().lower(), wrong.log()
    assert "certificate required" in no_cert.log(), no_cert.log()


def test_nothing_retained_but_status_info_and_settings(bridge, mosquitto, jfk_pcm):
    """After requests of every kind, a fresh subscriber finds only the bridge's state retained."""
    async def scenario():
        async with Probe(mosquitto, "voice/stt/kitchen/ret2/result/#", "voice/tts/kitchen/ret3/result/#") as probe:
            await send_audio(probe, "kitchen", "ret2", jfk_pcm[: 16000 * 2 * 3])
            await probe.next("voice/stt/kitchen/ret2/result/final")
            await probe.publish("voice/tts/kitchen/ret3/say", "Nothing to keep.")
            await probe.next("voice/tts/kitchen/ret3/result/done")
            await probe.publish("homeassistant/status", "online")
        async with Probe(mosquitto, "voice/#", "homeassistant/#") as fresh:
            return await retained_then(fresh)

    seen = run(scenario())
    retained = [m.topic for m in seen if m.retain]
    assert "voice/status" in retained and "voice/info" in retained
    for topic in retained:
        assert any(fnmatch.fnmatchcase(topic, pattern) for pattern in RETAINED_OK), topic
