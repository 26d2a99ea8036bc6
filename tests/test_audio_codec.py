"""broker/http/audio_codec.py: uploads of every common format decoded (real FFmpeg, real speech),
bounded and refused with clear errors, and speech encoders that stream and round-trip."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest

from broker.http.audio_codec import (
    OPENAI_PCM_RATE,
    SPEECH_MEDIA_TYPES,
    AudioCodecError,
    AudioTooLarge,
    DecodedAudio,
    decode_audio,
    encode_stream,
    sniff_format,
    speech_encoder,
)
from helpers import JFK_FLAC
from voice_common.errors import MqttCode

BIG = 100 * 1024 * 1024
#: tests/data/jfk.flac: "And so my fellow Americans ..." (11.0 s, 44.1 kHz stereo).
JFK_SECONDS = 11.0


def decode(data: bytes, **kwargs) -> DecodedAudio:
    return decode_audio(data, max_bytes=BIG, max_seconds=600, **kwargs)


@pytest.fixture(scope="module")
def speech() -> DecodedAudio:
    """Three seconds of real speech at a Piper voice's rate (22.05 kHz mono)."""
    full = decode(JFK_FLAC.read_bytes(), rate=22050, mono=True)
    return DecodedAudio(full.pcm[: 3 * 22050 * 2], 22050, 1)


def encode_in_pieces(fmt: str, audio: DecodedAudio, piece: int = 3001) -> tuple[bytes, list[bytes]]:
    """Feed the encoder pieces of an odd byte count (not sample-aligned); the whole file and
    what each feed returned."""
    encoder = speech_encoder(fmt, audio.rate, audio.channels)
    outputs = [encoder.feed(audio.pcm[i:i + piece]) for i in range(0, len(audio.pcm), piece)]
    return b"".join(outputs) + encoder.finish(), outputs


def test_real_speech_flac_decodes_to_its_duration():
    raw = JFK_FLAC.read_bytes()
    native = decode(raw)
    assert (native.rate, native.channels) == (44100, 2)
    assert native.seconds == pytest.approx(JFK_SECONDS, abs=0.01)
    speech16k = decode(raw, rate=16000, mono=True)
    assert (speech16k.rate, speech16k.channels) == (16000, 1)
    assert speech16k.seconds == pytest.approx(JFK_SECONDS, abs=0.01)
    samples = np.frombuffer(speech16k.pcm, dtype="<i2")
    assert np.abs(samples).max() > 3000  # speech, not silence


def _container(fmt: str, codec: str, audio: DecodedAudio) -> bytes:
    """A file as another program (a browser, a phone) writes it: FFmpeg's muxer, seekable."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=48000 if codec == "libopus" else audio.rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.frombuffer(audio.pcm, dtype="<i2").reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = audio.rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


@pytest.mark.parametrize("fmt, codec, sniffed", [
    ("webm", "libopus", "matroska"),   # Chrome's and Firefox's MediaRecorder
    ("ipod", "aac", "mov"),            # .m4a: iPhone voice memos, Safari's MediaRecorder
    ("ogg", "libopus", "ogg"),
    ("mp3", "libmp3lame", "mp3"),
    ("wav", "pcm_s16le", "wav"),
    ("aiff", "pcm_s16be", "aiff"),
])
def test_uploads_of_common_formats_decode(speech, fmt, codec, sniffed):
    data = _container(fmt, codec, speech)
    assert sniff_format(data) == sniffed
    decoded = decode(data, rate=16000, mono=True)
    assert (decoded.rate, decoded.channels) == (16000, 1)
    assert decoded.seconds == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_lossless_round_trip_is_exact(speech, fmt):
    data, _ = encode_in_pieces(fmt, speech)
    back = decode(data)
    assert (back.rate, back.channels) == (22050, 1)
    assert back.pcm == speech.pcm


@pytest.mark.parametrize("fmt, rate", [("mp3", 22050), ("aac", 22050), ("opus", 48000)])
def test_lossy_round_trip_keeps_length_and_rate(speech, fmt, rate):
    data, _ = encode_in_pieces(fmt, speech)
    back = decode(data)
    assert back.rate == rate and back.channels == 1  # Ogg Opus always decodes at 48 kHz
    assert back.seconds == pytest.approx(speech.seconds, abs=0.08)
    # The same speech, not noise: the loudness envelope follows the original's.
    original = np.abs(np.frombuffer(decode(data, rate=22050).pcm, dtype="<i2").astype(float))
    reference = np.abs(np.frombuffer(speech.pcm, dtype="<i2").astype(float))
    n = min(len(original), len(reference)) // 2205 * 2205
    env_a = original[:n].reshape(-1, 2205).mean(axis=1)
    env_b = reference[:n].reshape(-1, 2205).mean(axis=1)
    assert np.corrcoef(env_a, env_b)[0, 1] > 0.9


@pytest.mark.parametrize("fmt", sorted(SPEECH_MEDIA_TYPES))
def test_encoders_stream_bytes_before_the_end(speech, fmt):
    """Output comes out while PCM is still being fed, and starts with the format's header."""
    data, outputs = encode_in_pieces(fmt, speech, piece=4410)
    first = next(i for i, out in enumerate(outputs) if out)
    assert first < len(outputs) // 2, f"{fmt}: nothing until piece {first} of {len(outputs)}"
    expected = {"wav": "wav", "flac": "flac", "opus": "ogg", "mp3": "mp3", "aac": "aac"}
    if fmt in expected:
        assert sniff_format(data) == expected[fmt]


def test_streamed_wav_header_is_read_by_the_wave_module(speech):
    data, outputs = encode_in_pieces("wav", speech)
    assert outputs[0].startswith(b"RIFF") and outputs[0][8:16] == b"WAVEfmt "
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (22050, 1, 2)
        assert reader.readframes(len(speech.pcm) // 2) == speech.pcm


def test_openai_pcm_is_24khz_mono_16bit(speech):
    data, _ = encode_in_pieces("pcm", speech)
    assert len(data) % 2 == 0
    assert len(data) / 2 / OPENAI_PCM_RATE == pytest.approx(speech.seconds, abs=0.01)
    # Resampled, not garbled: it matches FFmpeg's own 24 kHz version of the same speech.
    wav, _ = encode_in_pieces("wav", speech)
    reference = np.frombuffer(decode(wav, rate=OPENAI_PCM_RATE).pcm, dtype="<i2").astype(float)
    ours = np.frombuffer(data, dtype="<i2").astype(float)
    n = min(len(ours), len(reference))
    assert np.corrcoef(ours[:n], reference[:n])[0, 1] > 0.95
    # A 24 kHz voice passes through untouched.
    native = DecodedAudio(decode(wav, rate=OPENAI_PCM_RATE).pcm, OPENAI_PCM_RATE, 1)
    passed, _ = encode_in_pieces("pcm", native)
    assert passed == native.pcm


def test_encode_stream_yields_as_pieces_arrive(speech):
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(speech.pcm), 8820):
            yield speech.pcm[i:i + 8820]

    async def collect() -> list[bytes]:
        return [chunk async for chunk in encode_stream(pieces(), speech_encoder("mp3", speech.rate))]

    chunks = asyncio.run(collect())
    assert len(chunks) > 5 and all(chunks)
    assert decode(b"".join(chunks)).seconds == pytest.approx(speech.seconds, abs=0.08)


def test_upload_over_the_byte_cap_is_refused_before_decoding():
    raw = JFK_FLAC.read_bytes()
    with pytest.raises(AudioTooLarge, match=f"the file is {len(raw)} bytes; the limit is 1000") as err:
        decode_audio(raw, max_bytes=1000, max_seconds=600)
    assert err.value.code == MqttCode.TOO_LARGE


def test_audio_over_the_seconds_cap_is_refused():
    with pytest.raises(AudioTooLarge, match="longer than the limit of 5 seconds") as err:
        decode_audio(JFK_FLAC.read_bytes(), max_bytes=BIG, max_seconds=5)
    assert err.value.code == MqttCode.TOO_LARGE


def test_a_small_file_that_expands_past_the_cap_is_stopped_while_decoding():
    """Ten minutes of silence compress to a few kilobytes of FLAC."""
    silence = DecodedAudio(b"\0\0" * 8000 * 600, 8000, 1)
    data, _ = encode_in_pieces("flac", silence, piece=1 << 20)
    assert len(data) < 200_000
    with pytest.raises(AudioTooLarge, match="longer than the limit of 60 seconds"):
        decode_audio(data, max_bytes=len(data), max_seconds=60)


@pytest.mark.parametrize("data, message", [
    (b"", "not an audio file"),
    (b"hello, this is text and not audio\n" * 10, "not an audio file"),
    (b"#EXTM3U\n#EXT-X-TARGETDURATION:1\nfile:///etc/passwd\n", "not an audio file"),  # never probed
    (b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunkjunk" + bytes(64), "cannot be decoded|no audio"),
    (b"fLaC" + bytes(100), "cannot be decoded|no audio"),
    (b"OggS" + b"\xff" * 200, "cannot be decoded|no audio"),
])
def test_garbage_is_a_clear_error(data, message):
    with pytest.raises(AudioCodecError, match=message) as err:
        decode(data)
    assert err.value.code == MqttCode.INVALID_FORMAT


def test_truncated_file_is_an_error_or_its_first_part(speech):
    """A file cut short (an upload that stopped) decodes what arrived, or is refused; never a crash."""
    data, _ = encode_in_pieces("flac", speech)
    try:
        part = decode(data[: len(data) // 2])
    except AudioCodecError:
        return
    assert 0 < part.seconds < speech.seconds


def test_unknown_speech_format_and_channel_count_are_refused():
    with pytest.raises(AudioCodecError, match="response_format 'ogg' is not one of"):
        speech_encoder("ogg", 22050)
    with pytest.raises(AudioCodecError, match="mono or stereo"):
        speech_encoder("wav", 22050, channels=3)
    encoder = speech_encoder("wav", 22050)
    encoder.feed(b"\x01\x02\x03")
    with pytest.raises(AudioCodecError, match="middle of a sample"):
        encoder.finish()
