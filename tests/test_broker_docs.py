"""docs/mqtt.md's shell examples, run as written with mosquitto_pub/mosquitto_sub against the bridge."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from helpers import JFK_TEXT, REPO, word_error_rate
from mqtt_helpers import (  # noqa: F401  (fixtures)
    Probe, bridge, jfk_pcm, mosquitto, run, send_audio, stt_server, tts_server,
)

DOC = REPO / "docs" / "mqtt.md"


def examples() -> dict[str, str]:
    text = DOC.read_text()
    return dict(re.findall(r"<!-- example: (\w+) -->\n```sh\n(.*?)```", text, re.S))


def run_example(name: str, mosquitto, cwd: Path) -> str:
    env = {**os.environ, "MQTT": " ".join(mosquitto.cli_auth())}
    out = subprocess.run(["bash", "-e", "-c", examples()[name]], cwd=cwd, env=env,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout.decode()


def test_doc_has_the_examples():
    assert set(examples()) == {"stt", "tts", "v5", "settings", "profile"}  # profile: test_broker_profiles.py
    assert 'MQTT="-h 127.0.0.1 -p 1883' in DOC.read_text()


def test_stt_example(bridge, mosquitto, jfk_pcm, tmp_path):
    (tmp_path / "speech.raw").write_bytes(jfk_pcm)
    final = json.loads(run_example("stt", mosquitto, tmp_path))
    assert word_error_rate(JFK_TEXT, final["text"]) == 0, final


def test_tts_example(bridge, mosquitto, tmp_path):
    done = json.loads(run_example("tts", mosquitto, tmp_path))
    audio = (tmp_path / "reply.raw").read_bytes()
    assert done["bytes"] == len(audio) > 22050, done

    async def transcribe():  # what mosquitto_sub saved is the spoken sentence
        async with Probe(mosquitto, "voice/stt/kitchen/doc1/result/#") as probe:
            await send_audio(probe, "kitchen", "doc1", audio, rate=22050)
            return (await probe.next("voice/stt/kitchen/doc1/result/*")).json()["text"]

    text = run(transcribe())
    assert word_error_rate("The weather today is sunny and warm.", text) <= 0.25, text


def test_v5_example(bridge, mosquitto, tmp_path):
    topic, payload = run_example("v5", mosquitto, tmp_path).strip().split(" ", 1)
    assert topic == "voice/reply/me/r2"
    assert json.loads(payload)["rate"] == 22050  # the first result: audio-start


def test_settings_example(bridge, mosquitto, tmp_path):
    settings = json.loads(run_example("settings", mosquitto, tmp_path))
    assert settings["speed"] == 1.0 and settings["mode"] == "transcribe_only"
