"""Home Assistant MQTT discovery: per site an event, a sensor, a notify and a busy sensor.

The configs are published without the retain flag (the bridge retains only its
state) and again whenever Home Assistant announces `homeassistant/status` =
online, which is how HA asks for non-retained discovery.

Each config names its entity id with `default_entity_id` (HA 2025.10+), not with
`object_id`, which HA warns about since 2025.10 and stops honouring in 2026.4.
Older HAs drop the unknown key (discovery schemas remove extra keys) and build the
same id from the device and entity names ("Voice kitchen" + "Busy" ->
binary_sensor.voice_kitchen_busy). The `notify` entity needs HA 2024.5+; older HAs
ignore its config.
"""

from __future__ import annotations

import json
import re
from typing import Any

from voice_common import __version__

from .topics import Topics


def _device(site: str) -> dict[str, Any]:
    return {
        "identifiers": [f"wyoming_voice_{site}"],
        "name": f"Voice {site}",
        "manufacturer": "wyoming-voice-services",
        "model": "MQTT voice bridge site",
        "sw_version": __version__,
    }


def entity_id(component: str, name: str) -> str:
    """A valid Home Assistant entity id: `component.` + `name` in lower case, every run of
    characters outside [a-z0-9] one `_` (as HA's slugify makes it): Kitchen-2 -> kitchen_2."""
    return f"{component}.{re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')}"


def discovery_messages(topics: Topics, site: str) -> list[tuple[str, bytes]]:
    """(config topic, JSON payload) of every entity of one site."""
    common = {
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device(site),
    }
    uid = f"voice_{site}"
    event_topic = topics.stt_event(site)
    entities: dict[tuple[str, str], dict[str, Any]] = {
        ("event", "transcript"): {
            "name": "Transcript",
            "state_topic": event_topic,
            "event_types": ["transcript"],
            "icon": "mdi:microphone-message",
        },
        ("sensor", "last_transcript"): {
            "name": "Last transcript",
            "state_topic": event_topic,
            # A sensor state holds at most 255 characters; the full text is an attribute.
            "value_template": "{{ value_json.text[:255] }}",
            "json_attributes_topic": event_topic,
            "json_attributes_template": "{{ {'text': value_json.text, 'sid': value_json.sid} | tojson }}",
            "icon": "mdi:text-box-outline",
        },
        ("notify", "say"): {
            "name": "Say",
            "command_topic": topics.tts_site_say(site),
            "icon": "mdi:account-voice",
        },
        ("binary_sensor", "busy"): {
            "name": "Busy",
            "state_topic": topics.busy(site),
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "running",
        },
    }
    messages = []
    for (component, object_id), config in entities.items():
        payload = {**config, **common, "unique_id": f"{uid}_{object_id}",
                   "default_entity_id": entity_id(component, f"{uid}_{object_id}")}
        topic = f"{topics.ha_prefix}/{component}/{uid}/{object_id}/config"
        messages.append((topic, json.dumps(payload).encode()))
    return messages
