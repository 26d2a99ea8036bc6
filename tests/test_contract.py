"""One contract across the three services: error codes, configuration, shared rules.

Each test here pins a place where the services once disagreed with each other or with
their docs (issue 13).
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from helpers import REPO
from voice_common.errors import MqttCode, WyomingCode


def _error_table(doc: str, heading: str) -> set[str]:
    """The codes in the first table under `heading` in a Markdown file."""
    text = (REPO / doc).read_text()
    section = text.split(heading, 1)[1]
    section = re.split(r"^#+ ", section, maxsplit=1, flags=re.M)[0]
    return set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))


def test_every_wire_error_code_is_documented_and_only_those():
    stt = _error_table("README.md", "### Errors")
    tts = _error_table("docs/tts.md", "## Errors")
    assert stt | tts == {code.value for code in WyomingCode}
    assert _error_table("docs/mqtt.md", "## Errors") == {code.value for code in MqttCode}


def test_errors_take_text_then_code():
    from broker.replies import SessionError
    from voice_common.protocol import ProtocolError

    wyoming = ProtocolError("audio-start received twice")
    mqtt = SessionError("payload is not valid JSON")
    assert (wyoming.text, wyoming.code) == ("audio-start received twice", "bad_request")
    assert mqtt.payload() == {"code": "invalid_request", "message": "payload is not valid JSON"}
    assert SessionError("x", MqttCode.BUSY).payload()["code"] == "busy"


# -- configuration -------------------------------------------------------------------------

def _configs():
    from broker.config import BridgeConfig
    from wyoming_stt.config import SttConfig
    from wyoming_tts.config import TtsConfig

    return {"stt": SttConfig, "tts": TtsConfig, "broker": BridgeConfig}


@pytest.mark.parametrize("name", ["stt", "tts", "broker"])
def test_example_config_names_every_option_and_loads_typed(name):
    from voice_common.settings import load, options_of

    cls = _configs()[name]
    path = REPO / "config" / f"{name}.toml"
    keys = set(re.findall(r"^#?\s*([a-z_]+)\s*=", path.read_text(), re.M))
    assert {opt.name for opt in options_of(cls)} <= keys
    config = load(cls, name, "", ["--config", str(path)], {})
    assert isinstance(config, cls)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.log_level = "DEBUG"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["stt", "tts", "broker"])
def test_each_default_is_written_once(name):
    """The option table's defaults are the dataclass fields' defaults: there is no second copy
    (the Limits classes that repeated them are gone), and a section built from the whole
    configuration carries the same values."""
    from voice_common.settings import ConnectionLimits, options_of

    cls = _configs()[name]
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    for opt in options_of(cls):
        assert opt.default == (None if fields[opt.name] is dataclasses.MISSING else fields[opt.name]), opt.name
    if name != "broker":
        config = cls()
        assert ConnectionLimits.of(config) == ConnectionLimits()


def test_backends_receive_only_their_own_section():
    from wyoming_stt.config import SttConfig, WhisperConfig
    from wyoming_tts.config import KokoroConfig, PiperConfig, TtsConfig

    whisper = WhisperConfig.of(SttConfig(model="base", language="de"))
    assert whisper.model == "base" and not hasattr(whisper, "language")
    piper = PiperConfig.of(TtsConfig(voices_dir="/srv/voices", kokoro_model="/m.onnx"))
    assert piper.voices_dir == "/srv/voices" and not hasattr(piper, "kokoro_model")
    kokoro = KokoroConfig.of(TtsConfig(voices_dir="/srv/voices", kokoro_model="/m.onnx"))
    assert kokoro.kokoro_model == "/m.onnx" and not hasattr(kokoro, "voices_dir")


def test_bridge_defaults_that_depend_on_other_options():
    from broker.config import parse_config

    assert parse_config([]).mqtt_port == 1883
    assert parse_config(["--mqtt-tls"]).mqtt_port == 8883
    assert parse_config(["--mqtt-port", "1999", "--mqtt-tls"]).mqtt_port == 1999
    assert parse_config([]).discover is True
    assert parse_config(["--stt", "tcp://127.0.0.1:10300"]).discover is False
    assert parse_config(["--embedded-mqtt"]).mqtt_protocol == "3.1.1"
    assert parse_config([]).mqtt_client_id.startswith("voice-bridge-")
    assert "secret" not in repr(parse_config(["--mqtt-password", "secret"]))


@pytest.mark.parametrize("args,needle", [
    (["--backend-timeout", "-1"], "--backend-timeout"),
    (["--max-sessions", "0"], "--max-sessions"),
    (["--mqtt-cert", "/etc/hostname"], "--mqtt-cert and --mqtt-key"),
])
def test_bridge_mistakes_are_one_line_and_exit_2(args, needle, capsys):
    from broker.config import parse_config

    with pytest.raises(SystemExit) as exc:
        parse_config(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
