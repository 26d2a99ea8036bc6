"""One contract across the three services: error codes, configuration, shared rules.

Each test here pins a place where the services once disagreed with each other or with
their docs (issue 13).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import queue
import re
import threading

import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import async_read_event, async_write_event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.tts import Synthesize

from helpers import REPO, free_port
from mqtt_helpers import Bridge, Probe, bridge, mosquitto, run, stt_server, tts_server  # noqa: F401  (fixtures)
from voice_common.errors import MqttCode, WyomingCode
from voice_common.settings import options_of


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
    from broker.core.errors import SessionError
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


# -- one speed range ---------------------------------------------------------------------------

def test_one_speed_range_for_the_service_the_bridge_and_the_option():
    from broker.core.errors import SessionError
    from broker.core.payloads import Voice
    from voice_common.voice import MAX_SPEED, MIN_SPEED
    from wyoming_tts.config import TtsConfig

    assert (MIN_SPEED, MAX_SPEED) == (0.5, 2.0)  # what kokoro-onnx accepts; docs/tts.md and docs/mqtt.md say so
    for text in ("docs/tts.md", "docs/mqtt.md"):
        assert "0.5–2.0" in (REPO / text).read_text(), text
    assert Voice.parse({"speed": 2}).speed == 2.0 and Voice.parse({"speed": 0.5}).speed == 0.5
    for bad in (3, 0.25, 4.0, "fast", True):
        with pytest.raises(SessionError) as err:
            Voice.parse({"speed": bad})
        assert err.value.code == "invalid_request" and "0.5 to 2.0" in err.value.text
    assert {opt.name: opt for opt in options_of(TtsConfig)}["speed"].convert("2.0", "flag") == 2.0


def test_speed_3_over_mqtt_is_refused_by_the_bridge_before_any_service(bridge, mosquitto):
    """It used to pass the bridge (0.25-4.0), reach the TTS service (0.5-2.0) and come back
    as backend_error; now the bridge answers invalid_request itself."""
    async def scenario():
        async with Probe(mosquitto, "voice/tts/kitchen/speed3/result/#") as probe:
            await probe.publish("voice/tts/kitchen/speed3/say", {"text": "It is warm.", "speed": 3})
            return await probe.next("voice/tts/kitchen/speed3/result/*", 10)

    msg = run(scenario())
    assert msg.topic.endswith("/result/error"), msg.topic
    assert msg.json()["code"] == "invalid_request" and "0.5 to 2.0" in msg.json()["message"]


def test_a_stored_speed_outside_the_range_is_dropped_and_the_rest_kept(tmp_path):
    """Settings stored by a version that allowed speed 3 keep the site's mode and voice."""
    import json
    import sqlite3

    from broker.core.settings import SettingsStore

    path = tmp_path / "settings.sqlite3"
    SettingsStore(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO site_settings VALUES (?, ?, 0)",
                   ("den", json.dumps({"mode": "tts_only", "voice": "joe", "speed": 3.0})))
    store = SettingsStore(str(path))
    settings = store.get("den")
    store.close()
    assert (settings.mode, settings.voice, settings.speed) == ("tts_only", "joe", None)


# -- one place for what the services share -------------------------------------------------

def test_language_codes_are_read_one_way():
    """STT and TTS each had a `normalize_language`, with different answers for one input."""
    from voice_common.language import LANGUAGE_TAG, language_matches, language_tag, primary_language
    from wyoming_stt.handler import whisper_language

    assert language_tag(" en_US ") == language_tag("EN-us") == "en-us"
    assert primary_language("en_US") == whisper_language("en-US") == "en"
    assert whisper_language("") is None and whisper_language(None) is None
    assert (language_matches("en_US", "en-us"), language_matches("en", "en_GB"), language_matches("de", "en")) \
        == (2, 1, 0)
    assert LANGUAGE_TAG.match("pt_BR") and not LANGUAGE_TAG.match("english please")


def test_a_speaker_is_found_by_name_or_number_the_same_way_everywhere():
    from voice_common.voice import speaker_index

    speakers = ("alice", "bob", "3")
    assert [speaker_index(s, speakers) for s in ("alice", "bob", "1", "3", "7", "carol")] == [0, 1, 1, 2, None, None]


def test_stt_languages_come_from_public_faster_whisper_api():
    """The backend once imported faster_whisper.tokenizer._LANGUAGE_CODES; it now asks the
    loaded model (WhisperModel.supported_languages). If an upgrade drops that, fail here."""
    from faster_whisper import WhisperModel

    assert isinstance(inspect.getattr_static(WhisperModel, "supported_languages"), property)
    source = inspect.getsource(importlib.import_module("wyoming_stt.backends.faster_whisper"))
    assert "_LANGUAGE_CODES" not in source


def test_speech_rate_is_one_constant():
    from voice_common.audio import SPEECH_RATE, PcmConverter
    from wyoming_stt import endpoint, streaming

    assert streaming.RATE == endpoint.RATE == SPEECH_RATE == PcmConverter(8000, 2, 1).target_rate == 16000
    for module in ("wyoming_stt.handler", "wyoming_stt.backends.faster_whisper"):
        source = inspect.getsource(importlib.import_module(module))
        assert "16000" not in source, module


# -- voice options reach the service -------------------------------------------------------

class FakeTts:
    """A Wyoming TTS service (one voice with two speakers) that records the synthesize requests
    it receives and answers each with a little silence."""

    INFO = Info(tts=[TtsProgram(
        name="fake", description="fake", attribution=Attribution(name="t", url="http://t"), installed=True,
        version="1", voices=[TtsVoice(
            name="multi", description="multi", attribution=Attribution(name="t", url="http://t"), installed=True,
            version="1", languages=["en_US"], speakers=[TtsVoiceSpeaker("alice"), TtsVoiceSpeaker("bob")])],
    )])

    def __init__(self) -> None:
        self.port = free_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        self.requests: queue.Queue[dict] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (event := await async_read_event(reader)) is not None:
            if Describe.is_type(event.type):
                await async_write_event(self.INFO.event(), writer)
            elif Synthesize.is_type(event.type):
                self.requests.put(dict(event.data))
                for answer in (AudioStart(rate=22050, width=2, channels=1),
                               AudioChunk(rate=22050, width=2, channels=1, audio=bytes(882)), AudioStop()):
                    await async_write_event(answer.event(), writer)
        writer.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_voice_options_over_mqtt_reach_the_service_whole(mosquitto):
    """A speaker without a voice name (the default voice's speaker) was dropped on the way: the
    wyoming package's SynthesizeVoice keeps a speaker only together with a name (and a language
    only without one)."""
    fake = FakeTts()
    own_bridge = Bridge(mosquitto, "--tts", fake.uri).start()
    try:
        async def scenario():
            async with Probe(mosquitto, "voice/tts/den/+/result/#") as probe:
                await probe.publish("voice/tts/den/v1/say", {"text": "Hello.", "speaker": "bob"})
                await probe.until("voice/tts/den/v1/result/done")
                await probe.publish("voice/site/den/settings/set", {"speaker": "alice", "speed": 1.5})
                await probe.publish("voice/tts/den/v2/say", {"text": "Hello.", "voice": "multi", "language": "en-US"})
                await probe.until("voice/tts/den/v2/result/done")

        run(scenario())
        first, second = fake.requests.get(timeout=10), fake.requests.get(timeout=10)
    finally:
        code = own_bridge.stop()
        fake.close()
    assert code == 0 and "Traceback" not in own_bridge.log(), own_bridge.log()
    assert first["voice"] == {"speaker": "bob"}
    assert second["voice"] == {"name": "multi", "language": "en-US", "speaker": "alice"} and second["speed"] == 1.5


# -- streamed text ---------------------------------------------------------------------------

def test_a_decimal_point_split_across_chunks_is_not_a_sentence_end():
    from wyoming_tts.text import SentenceBuffer, split_sentences

    buffer = SentenceBuffer()
    assert [buffer.add(chunk) for chunk in ("It is 3", ".", "5 degrees.")] == [[], [], ["It is 3.5 degrees."]]
    assert buffer.flush() == []
    # A digit and a period at the end of a chunk wait for the next one, which decides.
    buffer = SentenceBuffer()
    assert buffer.add("Gate 3.") == [] and buffer.add(" Boarding now.") == ["Gate 3.", "Boarding now."]
    buffer = SentenceBuffer()
    assert buffer.add("The score is 2.") == [] and buffer.flush() == ["The score is 2."]
    # Only a digit before the period holds a finished sentence back.
    assert SentenceBuffer().add("It is done.") == ["It is done."]
    assert split_sentences("It is 3.5 degrees. Windy.") == ["It is 3.5 degrees.", "Windy."]


# -- lint and types in CI ----------------------------------------------------------------------

def test_ci_lints_and_type_checks_before_the_tests():
    import tomllib

    script = (REPO / "scripts" / "test.sh").read_text()
    assert script.index("-m ruff check") < script.index("-m mypy") < script.index("-m pytest")
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert any(re.fullmatch(r"ruff==[\d.]+", r) for r in extra) and any(re.fullmatch(r"mypy==[\d.]+", r) for r in extra)
