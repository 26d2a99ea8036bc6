"""Piper and Kokoro run on our own onnxruntime sessions (threads stop spinning after a run): the audio
must be byte for byte what the libraries' own loading gives, alone and with requests at once.

Piper draws noise inside the model, so both sides run with the noise off
(`--noise-scale 0 --noise-w 0`), which makes a synthesis a pure function of its text.
Kokoro's int8 model is deterministic as it is.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from voice_common.models import package_dir
from wyoming_tts.backends import SynthesisOptions
from wyoming_tts.backends.onnx_cpu import cores
from wyoming_tts.backends.piper import BUNDLED_PACKAGE, BUNDLED_VOICE, PiperBackend
from wyoming_tts.config import KokoroConfig, PiperConfig, TtsConfig

TEXTS = [
    "Turn off the kitchen light.",
    "Suddenly the gardener was reading quietly outside the corner shop.",
    "It is twenty one degrees, and the forecast says rain after six in the evening.",
    "Yes.",
]


@pytest.fixture(scope="module")
def ours() -> PiperBackend:
    backend = PiperBackend(PiperConfig.of(TtsConfig(noise_scale=0.0, noise_w=0.0)), None)
    backend.load()
    return backend


@pytest.fixture(scope="module")
def stock(ours):
    """The same voice loaded the way piper-tts loads it (its default session options)."""
    from piper import PiperVoice, SynthesisConfig

    path = package_dir(*BUNDLED_PACKAGE) / "data" / f"{BUNDLED_VOICE}.onnx"
    voice = PiperVoice.load(path)
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    return lambda text: b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, config))


def _ours(backend: PiperBackend, text: str) -> bytes:
    return b"".join(backend.synthesize(text, BUNDLED_VOICE, SynthesisOptions()).chunks)


def test_session_uses_every_core_and_stops_spinning_after_a_run(ours):
    session = ours._loaded[BUNDLED_VOICE][0].session
    options = session.get_session_options()
    assert options.intra_op_num_threads == cores()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_audio_equals_piper_tts_own_loading(ours, stock):
    for text in TEXTS:
        expected = stock(text)
        assert len(expected) > 4000
        assert _ours(ours, text) == expected


def test_requests_at_once_get_the_same_audio_as_alone(ours, stock):
    expected = {text: stock(text) for text in TEXTS}
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda text: (text, _ours(ours, text)), TEXTS * 2))
    for text, audio in got:
        assert audio == expected[text]


@pytest.fixture(scope="module")
def kokoro():
    from wyoming_tts.backends.kokoro import KokoroBackend

    backend = KokoroBackend(KokoroConfig.of(TtsConfig()), "jf_alpha")
    backend.load()
    return backend


def test_kokoro_audio_equals_kokoro_onnx_own_session(kokoro):
    import onnxruntime
    from kokoro_onnx import Kokoro

    from wyoming_tts.backends.kokoro import VOICES_PACKAGE, _bundled_model

    voices = package_dir(*VOICES_PACKAGE) / "data" / "voices_ja.npz"
    stock = Kokoro.from_session(
        onnxruntime.InferenceSession(str(_bundled_model()), providers=["CPUExecutionProvider"]), str(voices))
    style = kokoro._styles["jf_alpha"]
    for text in TEXTS[:2]:
        phonemes = kokoro._phonemize(text, "en-us")
        expected = stock.create(phonemes, voice=style, speed=1.0, is_phonemes=True)[0]
        assert expected.size > 10000
        assert np.array_equal(kokoro._infer(phonemes, style, 1.0), expected)
