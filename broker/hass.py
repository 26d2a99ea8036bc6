"""Home Assistant MQTT discovery: per site an event, a sensor, a notify and a busy sensor.

The configs are published without the retain flag (the bridge retains only
status, info and settings) and again whenever Home Assistant announces
`homeassistant/status` = online, which is how HA asks for non-retained discovery.
"""

from __future__ import annotations

import json

from voice_common import __version__

from .topics import Topics


def _device(site: str) -> dict:
    return {
        "identifiers": [f"wyoming_voice_{site}"],
        "name": f"Voice {site}",
        "manufacturer": "wyoming-voice-services",
        "model": "MQTT voice bridge site",
        "sw_version": __version__,
    }


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
    entities = {
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
        payload = {**config, **common, "unique_id": f"{uid}_{object_id}", "object_id": f"{uid}_{object_id}"}
        topic = f"{topics.ha_prefix}/{component}/{uid}/{object_id}/config"
        messages.append((topic, json.dumps(payload).encode()))
    return messages
