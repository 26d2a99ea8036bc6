"""Finding services by zeroconf: a TTS service advertised on the LAN is described, used, and dropped."""

from __future__ import annotations

import json

from helpers import ServerProcess
from mqtt_helpers import Bridge, Probe, audio_of, mosquitto, run  # noqa: F401  (fixtures)


def test_zeroconf_service_found_used_and_removed(mosquitto, tmp_path):
    name = f"pytest-broker-tts-{tmp_path.name[-12:]}"
    server = ServerProcess("wyoming_tts", "--zeroconf", name, "--zeroconf-host", "127.0.0.1").wait_ready()
    bridge = Bridge(mosquitto, "--discover", "--prefix", "zc", db=tmp_path / "s.sqlite3").start()

    def ours(info: dict) -> list[dict]:
        return [s for s in info["services"] if s["uri"] == server.uri]

    async def wait_info(probe: Probe, want: bool) -> dict:
        while True:
            info = json.loads((await probe.next("zc/info", 20)).payload)
            if bool(ours(info) and ours(info)[0]["healthy"]) == want:
                return info

    async def scenario():
        async with Probe(mosquitto, "zc/info", "zc/tts/+/+/result/#") as probe:
            found = await wait_info(probe, True)
            await probe.publish("zc/tts/lab/z1/say", "Found you on the network.")
            seen = await probe.until("zc/tts/lab/z1/result/done", 30)
            server.terminate()
            gone = await wait_info(probe, False)
            return found, seen, gone

    try:
        found, seen, gone = run(scenario())
    finally:
        server.terminate()
        assert bridge.stop() == 0, bridge.log()
    service = ours(found)[0]
    assert service["source"] == "zeroconf" and service["kinds"] == ["tts"] and service["name"].startswith(name)
    assert "en_US-joe-medium" in service["voices"]
    assert len(audio_of(seen)) > 10000
    assert "Traceback" not in bridge.log(), bridge.log()
