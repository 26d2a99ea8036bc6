"""Discovery both ways: Wyoming services found by zeroconf, and the bridge's entities found by
Home Assistant (MQTT discovery)."""

from __future__ import annotations

import json
import re

from broker.mqtt.hass import discovery_messages
from broker.mqtt.topics import Topics
from helpers import ServerProcess
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Bridge, Probe, audio_of, bridge, jfk_pcm, mosquitto, retained_then, run, send_audio, stt_server, tts_server,
)

#: What Home Assistant accepts as an entity id (homeassistant.core.valid_entity_id, lower case).
ENTITY_ID_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9]+(?:_[a-z0-9]+)*$")


def test_zeroconf_service_found_used_and_removed(mosquitto, tmp_path):
    name = f"pytest-broker-tts-{tmp_path.name[-12:]}"
    server = ServerProcess("wyoming_tts", "--zeroconf", name, "--zeroconf-host", "127.0.0.1").wait_ready()
    bridge = Bridge(mosquitto, "--discover", "--prefix", "zc", db=tmp_path / "s.sqlite3").start()

    def ours(info: dict) -> list[dict]:
        return [s for s in info["services"] if s["uri"] == server.uri]

    async def wait_info(probe: Probe, want: bool) -> dict:
        while True:
            info = json.loads((await probe.next("zc/info", 120)).payload)  # detects a hang only
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


def test_home_assistant_discovery(bridge, mosquitto):
    async def scenario():
        async with Probe(mosquitto, "homeassistant/+/voice_kitchen/+/config") as ha:
            await ha.publish("homeassistant/status", "online")  # Home Assistant's birth message
            configs = {}
            while len(configs) < 4:
                msg = await ha.next("homeassistant/*", 60)
                configs[msg.topic] = msg
        # HA subscribes to a state topic only once it has processed the config: the busy state
        # must be waiting for it there (retained), or the binary_sensor shows `unknown`.
        async with Probe(mosquitto, "voice/site/kitchen/busy") as entity:
            busy = await entity.next("voice/site/kitchen/busy", 60)
        return configs, busy

    configs, busy = run(scenario())
    assert all(not m.retain for m in configs.values())
    event = configs["homeassistant/event/voice_kitchen/transcript/config"].json()
    sensor = configs["homeassistant/sensor/voice_kitchen/last_transcript/config"].json()
    notify = configs["homeassistant/notify/voice_kitchen/say/config"].json()
    busy_cfg = configs["homeassistant/binary_sensor/voice_kitchen/busy/config"].json()
    for cfg in (event, sensor, notify, busy_cfg):
        assert cfg["availability_topic"] == "voice/status"
        assert cfg["device"]["identifiers"] == ["wyoming_voice_kitchen"]
        assert cfg["unique_id"].startswith("voice_kitchen_")
        # `object_id` is deprecated (HA 2025.10) and no longer honoured from HA 2026.4.
        assert "object_id" not in cfg and ENTITY_ID_RE.match(cfg["default_entity_id"]), cfg
    assert event["default_entity_id"] == "event.voice_kitchen_transcript"
    assert sensor["default_entity_id"] == "sensor.voice_kitchen_last_transcript"
    assert notify["default_entity_id"] == "notify.voice_kitchen_say"
    assert busy_cfg["default_entity_id"] == "binary_sensor.voice_kitchen_busy"
    assert event["state_topic"] == "voice/stt/kitchen/event" and event["event_types"] == ["transcript"]
    assert sensor["value_template"] == "{{ value_json.text[:255] }}"
    assert sensor["json_attributes_topic"] == "voice/stt/kitchen/event"
    assert notify["command_topic"] == "voice/tts/kitchen/say"
    assert busy_cfg["state_topic"] == "voice/site/kitchen/busy"
    assert busy.payload == b"OFF" and busy.retain


def test_busy_state_retained_only_for_announced_sites(bridge, mosquitto, jfk_pcm):
    """A session at an announced site leaves its state retained (ON while running, OFF after);
    a site id made up by a client leaves nothing on the broker."""
    async def scenario():
        async with Probe(mosquitto, "voice/stt/+/+/result/#", "voice/site/+/busy") as probe:
            await send_audio(probe, "kitchen", "b1", jfk_pcm[: 16000 * 2], stop=False)
            while (await probe.next("voice/site/kitchen/busy", 60)).payload != b"ON":
                pass
            async with Probe(mosquitto, "voice/site/kitchen/busy") as late:  # HA subscribing now
                during = await late.next("voice/site/kitchen/busy", 60)
            await probe.publish("voice/stt/kitchen/b1/stop", {})
            await probe.next("voice/stt/kitchen/b1/result/*", 60)
            while (await probe.next("voice/site/kitchen/busy", 60)).payload != b"OFF":
                pass
            await send_audio(probe, "made-up-site", "b2", jfk_pcm[: 16000 * 2])
            await probe.next("voice/stt/made-up-site/b2/result/*", 60)
            while (await probe.next("voice/site/made-up-site/busy", 60)).payload != b"OFF":
                pass
        async with Probe(mosquitto, "voice/site/+/busy") as late:
            after = {m.topic: m for m in await retained_then(late)}
        return during, after

    during, after = run(scenario())
    assert during.payload == b"ON" and during.retain
    assert after["voice/site/kitchen/busy"].payload == b"OFF" and after["voice/site/kitchen/busy"].retain
    assert "voice/site/made-up-site/busy" not in after


def test_default_entity_ids_of_unusual_site_names():
    """Site ids may hold `-` and capitals; entity ids may not (HA refuses such configs)."""
    configs = {topic: json.loads(payload) for topic, payload in discovery_messages(Topics(), "Living-Room_2")}
    ids = sorted(cfg["default_entity_id"] for cfg in configs.values())
    assert ids == [
        "binary_sensor.voice_living_room_2_busy", "event.voice_living_room_2_transcript",
        "notify.voice_living_room_2_say", "sensor.voice_living_room_2_last_transcript",
    ]
    assert all(ENTITY_ID_RE.match(i) for i in ids)
    # The unique ids (what HA keys its entity registry on) stay as they always were.
    assert {cfg["unique_id"] for cfg in configs.values()} == {
        "voice_Living-Room_2_transcript", "voice_Living-Room_2_last_transcript", "voice_Living-Room_2_say",
        "voice_Living-Room_2_busy",
    }
