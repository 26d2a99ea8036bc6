"""Voice-profile requests checked by the bridge itself, with no cloning backend (no torch):
every field of a new profile (payloads), the info marker both sides read, and a bridge
whose only TTS service (the bundled Piper voice, real) keeps no profiles."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mqtt_helpers import run, tts_server  # noqa: F401  (fixture)

from broker.config import parse_config
from broker.core.core import Core
from broker.core.errors import SessionError
from broker.core.metrics import BrokerMetrics
from broker.core.payloads import MAX_CLIP_SECONDS, VoiceProfileRequest, voice_name
from broker.core.services import ServicePool
from broker.core.settings import SettingsStore
from voice_common.voice_events import ProfileSupport, profile_support
from voice_common.errors import MqttCode
from wyoming_tts.__main__ import build_info
from voice_common.voice_events import mark_profiles
from wyoming_tts.voices.profiles import NAME as SERVICE_NAME_RE

GOOD = {"name": "grandma", "transcript": "Some call me nature.", "language": "en_US"}


def refused(data: dict) -> MqttCode:
    with pytest.raises(SessionError) as caught:
        VoiceProfileRequest.parse(data)
    return caught.value.code


def test_a_good_request_with_its_defaults():
    request = VoiceProfileRequest.parse({**GOOD, "description": "Her voice", "language": ["en_US", "de-DE"]})
    assert (request.name, request.languages, request.description) == ("grandma", ("en_US", "de-DE"), "Her voice")
    assert (request.rate, request.width, request.channels) == (24000, 2, 1)
    assert request.max_bytes == int(MAX_CLIP_SECONDS * 24000) * 2


@pytest.mark.parametrize("name", ["../x", "..", ".hidden", "-x", "a/b", "a\\b", "a..b", "", "x" * 65, "a b",
                                  "é", None, 7])
def test_names_that_could_spell_a_path_or_are_not_names_are_refused(name):
    assert refused({**GOOD, "name": name}) is MqttCode.INVALID_REQUEST
    with pytest.raises(SessionError):
        voice_name(name)


@pytest.mark.parametrize("name", ["grandma", "Oma_2", "en.v1", "a", "x" * 64, "_x-y.z"])
def test_the_bridge_takes_exactly_the_names_the_service_takes(name):
    assert voice_name(name) == name and SERVICE_NAME_RE.match(name)


@pytest.mark.parametrize(("change", "code"), [
    ({"transcript": None}, MqttCode.INVALID_REQUEST),
    ({"transcript": "   "}, MqttCode.INVALID_REQUEST),
    ({"transcript": "x" * 1001}, MqttCode.TOO_LARGE),
    ({"language": None}, MqttCode.INVALID_REQUEST),
    ({"language": []}, MqttCode.INVALID_REQUEST),
    ({"language": "english please"}, MqttCode.INVALID_REQUEST),
    ({"language": ["en_US", 5]}, MqttCode.INVALID_REQUEST),
    ({"description": "x" * 301}, MqttCode.INVALID_REQUEST),
    ({"description": 3}, MqttCode.INVALID_REQUEST),
    ({"width": 3}, MqttCode.INVALID_FORMAT),
    ({"rate": 12345}, MqttCode.INVALID_FORMAT),
    ({"channels": 3}, MqttCode.INVALID_FORMAT),
    ({"rate": "fast"}, MqttCode.INVALID_FORMAT),
])
def test_every_bad_field_is_refused_with_its_code(change, code):
    assert refused({**GOOD, **change}) is code


def test_the_clip_is_checked_whole():
    request = VoiceProfileRequest.parse({**GOOD, "rate": 16000, "channels": 2})
    second = 16000 * 2 * 2
    request.check_clip(3 * second)  # 3 s: the shortest accepted
    request.check_clip(int(MAX_CLIP_SECONDS) * second)
    for nbytes, code in ((3 * second - 4, MqttCode.INVALID_REQUEST), (3 * second + 2, MqttCode.INVALID_FORMAT),
                         (int(MAX_CLIP_SECONDS) * second + 4, MqttCode.TOO_LARGE)):
        with pytest.raises(SessionError) as caught:
            request.check_clip(nbytes)
        assert caught.value.code is code, nbytes


def test_the_info_marker_is_read_as_the_service_writes_it():
    plain = build_info([]).event()
    assert profile_support(plain) is None
    marked = mark_profiles(build_info([]).event(), ProfileSupport(("oma", "opa"), editable=False))
    assert profile_support(marked) == ProfileSupport(("oma", "opa"), editable=False)


def test_without_a_service_that_keeps_profiles_the_request_is_refused_before_any_audio(tts_server, tmp_path):  # noqa: F811
    async def scenario() -> list[tuple[MqttCode, str]]:
        config = parse_config(["--tts", tts_server.uri, "--db", str(Path(tmp_path) / "db.sqlite3")])
        metrics = BrokerMetrics()
        pool = ServicePool(config.connect_timeout, metrics)
        service = pool.add(tts_server.uri, "static", expect="tts")
        await pool.check(service)
        assert service.healthy and service.profiles is None and service.summary()["profiles"] is None
        core = Core(config, pool, SettingsStore(config.db), metrics)
        codes = []
        for attempt in (lambda: core.open_voice_create(VoiceProfileRequest.parse(GOOD), _Sink(), site="lab"),
                        lambda: core.open_voice_delete("grandma", _Sink(), site="lab")):
            with pytest.raises(SessionError) as caught:
                attempt()
            codes.append((caught.value.code, caught.value.text))
        assert core.sessions() == [] and core.slots.active == 0
        await core.close()
        await pool.close()
        core.store.close()
        return codes

    codes = run(asyncio.wait_for(scenario(), 120))
    assert [code for code, _ in codes] == [MqttCode.SERVICE_UNAVAILABLE] * 2
    assert all("keeps voice profiles" in text for _, text in codes)


class _Sink:
    async def send(self, result) -> None:
        raise AssertionError(f"a refused request sends nothing: {result}")
