"""The OpenAI-compatible routes of a running bridge (`--no-mqtt --api`), called by the official
`openai` package, against the real STT and TTS servers: held-out speech -> right words in every
response format; speech streamed, decodable, and transcribed back by our STT."""

from __future__ import annotations

import io
import json
import wave

import av
import numpy as np
import openai
import pytest

from helpers import JFK_FLAC, JFK_TEXT, espeak, word_error_rate
from http_helpers import api_bridge  # noqa: F401 (fixture)
from mqtt_helpers import mosquitto, stt_server, tts_server  # noqa: F401 (fixtures)

PATIENCE = 120


def client(bridge) -> openai.OpenAI:
    return openai.OpenAI(base_url=bridge.url + "/v1", api_key=bridge.key, max_retries=0, timeout=PATIENCE)


def wav_bytes(pcm: bytes, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def decode_any(data: bytes, rate: int = 16000) -> bytes:
    """Any encoded audio -> 16-bit mono PCM at `rate` (PyAV), to prove a body decodes."""
    pieces = []
    with av.open(io.BytesIO(data)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(pieces).astype("<i2").tobytes()


def test_transcribes_jfk_flac_in_every_response_format(api_bridge):  # noqa: F811
    api = client(api_bridge)
    results = {}
    for fmt in ("json", "text", "verbose_json", "srt", "vtt"):
        with open(JFK_FLAC, "rb") as f:
            results[fmt] = api.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt)
    assert word_error_rate(JFK_TEXT, results["json"].text) < 0.2
    assert word_error_rate(JFK_TEXT, results["text"]) < 0.2
    verbose = results["verbose_json"]
    assert word_error_rate(JFK_TEXT, verbose.text) < 0.2 and verbose.language == "english" and verbose.duration > 5
    assert "-->" in results["srt"] and results["srt"].lstrip().startswith("1")
    assert results["vtt"].startswith("WEBVTT") and "-->" in results["vtt"]


def test_transcribes_held_out_espeak_speech(api_bridge):  # noqa: F811
    sentence = "The library closes at seven on Sunday evenings."
    upload = ("clip.wav", wav_bytes(espeak(sentence)), "audio/wav")
    result = client(api_bridge).audio.transcriptions.create(model="whisper-1", file=upload, language="en")
    assert word_error_rate(sentence, result.text) <= 0.25, result.text


def test_speech_streams_decodes_and_is_transcribed_back(api_bridge):  # noqa: F811
    api = client(api_bridge)
    sentence = "Please bring the green umbrella tomorrow morning."
    bodies = {}
    for fmt in ("wav", "flac", "mp3", "opus"):
        with api.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=sentence,
                                                             response_format=fmt) as response:
            assert response.headers["content-type"].startswith("audio/")
            chunks = list(response.iter_bytes())
        bodies[fmt] = b"".join(chunks)
    pcm = {fmt: decode_any(body) for fmt, body in bodies.items()}
    for fmt, samples in pcm.items():
        assert len(samples) > 16000, fmt  # more than a second of speech, whatever the format
    heard = api.audio.transcriptions.create(model="whisper-1", file=("speech.wav", bodies["wav"], "audio/wav"))
    assert word_error_rate(sentence, heard.text) <= 0.25, heard.text


def test_raw_pcm_is_openai_24khz(api_bridge):  # noqa: F811
    raw = client(api_bridge).audio.speech.create(model="tts-1", voice="alloy", input="Good morning.",
                                                 response_format="pcm").content
    assert len(raw) % 2 == 0 and len(raw) > 24000 * 2 // 4  # over a quarter second at 24 kHz


def test_models_and_voices_list_what_the_services_offer(api_bridge):  # noqa: F811
    import httpx

    models = [m.id for m in client(api_bridge).models.list().data]
    answer = httpx.get(api_bridge.url + "/api/v1/voices", headers={"Authorization": f"Bearer {api_bridge.key}"})
    voices = answer.json()["voices"]
    assert voices and all(v["kind"] == "builtin" and v["languages"] and v["backend"] for v in voices)
    assert {v["name"] for v in voices} <= set(models)
    assert len(models) > len(voices)  # the STT models too
    same = httpx.get(api_bridge.url + "/v1/audio/voices", headers={"Authorization": f"Bearer {api_bridge.key}"})
    assert same.json() == answer.json()


def test_errors_have_openai_shape_and_project_codes(api_bridge):  # noqa: F811
    api = client(api_bridge)
    with pytest.raises(openai.BadRequestError) as garbage:
        api.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"not audio at all" * 10, "audio/wav"))
    assert garbage.value.body["code"] == "invalid_format"
    with pytest.raises(openai.APIStatusError) as long_text:
        api.audio.speech.create(model="tts-1", voice="alloy", input="word " * 200)
    assert long_text.value.status_code == 413 and long_text.value.body["code"] == "too_large"
    with pytest.raises(openai.BadRequestError) as empty:
        api.audio.speech.create(model="tts-1", voice="alloy", input="   ")
    assert empty.value.body["code"] == "invalid_request"
    with pytest.raises(openai.BadRequestError) as fmt:
        api.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="ogg")  # type: ignore
    assert json.dumps(fmt.value.body) and fmt.value.body["param"] == "response_format"


def test_api_runs_beside_the_mqtt_front(mosquitto, stt_server, tts_server):  # noqa: F811
    """`--api` with MQTT on: both fronts on one core; the HTTP one answers with auth off."""
    import httpx

    from helpers import free_port
    from mqtt_helpers import Bridge

    port = free_port()
    bridge = Bridge(mosquitto, "--stt", stt_server.uri, "--tts", tts_server.uri, "--api", f"127.0.0.1:{port}",
                    "--api-auth", "off").start()
    try:
        assert bridge.healthy()  # MQTT connected
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").text == "ok\n"
        with open(JFK_FLAC, "rb") as f:
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/audio/transcriptions", files={"file": f},
                                data={"model": "whisper-1", "response_format": "text"}, timeout=PATIENCE)
        assert answer.status_code == 200 and word_error_rate(JFK_TEXT, answer.text) < 0.2
    finally:
        assert bridge.stop() == 0, bridge.log()
    assert "--api-auth off" in bridge.log() and "Traceback" not in bridge.log()
