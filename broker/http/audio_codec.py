"""Audio files in, speech out: decode uploads of any common format, encode speech as it is made.

Both directions use PyAV (FFmpeg's libraries in a wheel). It is already installed with
faster-whisper, and `voice_common.audio` resamples with it, so it adds no new native
library; its wheels carry the decoders browsers and phones produce (WAV, FLAC, Ogg/Opus,
MP3, WebM/Opus, M4A/AAC) and the encoders OpenAI's speech API offers (MP3, Opus, AAC,
FLAC), where `soundfile` (libsndfile) reads neither WebM nor M4A.

Decoding is bounded: the upload's bytes are capped before FFmpeg sees them, the decoded
seconds while it decodes (a small compressed file can expand to hours), and the container
format is chosen from the file's leading bytes among an allowlist, so FFmpeg never probes
its other demuxers (playlists and concat files that open other files or URLs). Decoding
is CPU work: call `decode_audio` off the event loop (`asyncio.to_thread`).

Encoding is streaming: a `SpeechEncoder` is fed PCM pieces as the TTS service makes
them and returns the bytes that are ready at once, so an HTTP response can stream audio
while the rest is still being synthesized.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from voice_common.audio import PcmConverter, float_to_pcm16
from voice_common.errors import MqttCode

#: Sample width of every PCM this module takes or gives: 16-bit little-endian.
WIDTH = 2
#: OpenAI's `pcm` speech format: 24 kHz, 16-bit, mono, little-endian, no header.
OPENAI_PCM_RATE = 24000


class AudioCodecError(ValueError):
    """Audio that cannot be read or written; `code` is the API's error code for it."""

    code = MqttCode.INVALID_FORMAT


class AudioTooLarge(AudioCodecError):
    """An upload over the byte cap, or audio over the seconds cap."""

    code = MqttCode.TOO_LARGE


@dataclass(frozen=True)
class DecodedAudio:
    """16-bit little-endian interleaved PCM at `rate` with `channels` (1 or 2)."""

    pcm: bytes
    rate: int
    channels: int

    @property
    def samples(self) -> int:
        return len(self.pcm) // (WIDTH * self.channels)

    @property
    def seconds(self) -> float:
        return self.samples / self.rate


def sniff_format(data: bytes) -> str | None:
    """The FFmpeg demuxer for a file's leading bytes, among the formats the API accepts."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM (browsers' MediaRecorder) and Matroska
        return "matroska"
    if head[4:8] == b"ftyp":  # ISO media: M4A, MP4 (iPhone voice memos, Safari's MediaRecorder)
        return "mov"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x3
        return "aac" if layer == 0 else "mp3"  # ADTS AAC has layer 0; MPEG audio layers 1-3
    return None


def decode_audio(data: bytes, *, max_bytes: int, max_seconds: float, rate: int | None = None,
                 mono: bool = False) -> DecodedAudio:
    """An uploaded audio file -> PCM, at `rate` (default: the file's) and mono or the file's
    channels (more than two are mixed down to stereo).

    Raises AudioTooLarge over `max_bytes` or `max_seconds`, AudioCodecError for anything
    that is not audio in an accepted format. Blocking: run it in a thread.
    """
    if len(data) > max_bytes:
        raise AudioTooLarge(f"the file is {len(data)} bytes; the limit is {max_bytes}")
    demuxer = sniff_format(data)
    if demuxer is None:
        raise AudioCodecError("not an audio file this API reads (wav, flac, ogg/opus, mp3, webm, m4a, aac, aiff)")
    try:
        return _decode(data, demuxer, max_seconds, rate, mono)
    except av.FFmpegError as err:
        raise AudioCodecError(f"the {demuxer} file cannot be decoded ({err.strerror or err})") from err


def _decode(data: bytes, demuxer: str, max_seconds: float, rate: int | None, mono: bool) -> DecodedAudio:
    import io

    with av.open(io.BytesIO(data), mode="r", format=demuxer) as container:
        if not container.streams.audio:
            raise AudioCodecError(f"the {demuxer} file has no audio track")
        stream = container.streams.audio[0]
        in_rate = stream.codec_context.sample_rate or stream.rate
        if not in_rate:
            raise AudioCodecError(f"the {demuxer} file does not say its sample rate")
        channels = 1 if mono or stream.codec_context.channels == 1 else 2
        out_rate = rate or in_rate
        resampler = av.AudioResampler(format="s16", layout="mono" if channels == 1 else "stereo", rate=out_rate)
        limit = int(max_seconds * out_rate)
        pieces: list[bytes] = []
        samples = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                samples += out.samples
                if samples > limit:
                    raise AudioTooLarge(f"the audio is longer than the limit of {max_seconds:g} seconds")
                pieces.append(out.to_ndarray().tobytes())
        for out in resampler.resample(None):
            samples += out.samples
            pieces.append(out.to_ndarray().tobytes())
        if samples > limit:
            raise AudioTooLarge(f"the audio is longer than the limit of {max_seconds:g} seconds")
    if samples == 0:
        raise AudioCodecError(f"the {demuxer} file holds no audio samples")
    return DecodedAudio(b"".join(pieces), out_rate, channels)


# --- speech output ------------------------------------------------------------------------

#: Speech formats (OpenAI's `response_format` names) and the media type of each.
SPEECH_MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class SpeechEncoder:
    """Turns 16-bit PCM pieces into a file format as they come.

    `feed` takes PCM of any byte count (a piece need not end on a sample boundary) and
    returns the bytes ready now (often empty for compressed formats, which work in
    frames); `finish` returns the rest. Each call takes milliseconds for a piece of speech.
    """

    def __init__(self, rate: int, channels: int = 1) -> None:
        if channels not in (1, 2):
            raise AudioCodecError(f"speech is encoded from mono or stereo PCM, not {channels} channels")
        self.rate = rate
        self.channels = channels
        self._frame = WIDTH * channels
        self._carry = b""

    def feed(self, pcm: bytes) -> bytes:
        pcm = self._carry + pcm
        whole = len(pcm) - len(pcm) % self._frame
        self._carry = pcm[whole:]
        return self._encode(pcm[:whole]) if whole else self._encode(b"")

    def finish(self) -> bytes:
        if self._carry:
            raise AudioCodecError("the speech audio ended in the middle of a sample")
        return self._close()

    def _encode(self, pcm: bytes) -> bytes:
        raise NotImplementedError

    def _close(self) -> bytes:
        raise NotImplementedError


class WavEncoder(SpeechEncoder):
    """A WAV header first, then the PCM as it comes. The length is not known while
    streaming, so the RIFF and data sizes are 0xFFFFFFFF (as streaming servers write
    them; FFmpeg, browsers and Python's `wave` read such files to their end)."""

    def __init__(self, rate: int, channels: int = 1) -> None:
        super().__init__(rate, channels)
        self._header: bytes | None = wav_header(rate, channels)

    def _take_header(self) -> bytes:
        header, self._header = self._header or b"", None
        return header

    def _encode(self, pcm: bytes) -> bytes:
        return self._take_header() + pcm

    def _close(self) -> bytes:
        return self._take_header()


def wav_header(rate: int, channels: int, data_bytes: int = 0xFFFFFFFF) -> bytes:
    """A 44-byte PCM WAV header; the default sizes say "until the end of the stream"."""
    riff_size = 0xFFFFFFFF if data_bytes == 0xFFFFFFFF else 36 + data_bytes
    block = WIDTH * channels
    return (b"RIFF" + struct.pack("<I", riff_size) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 8 * WIDTH)
            + b"data" + struct.pack("<I", data_bytes))


class OpenAiPcmEncoder(SpeechEncoder):
    """OpenAI's `pcm`: 24 kHz 16-bit mono, resampled with the project's PcmConverter;
    passed through untouched when the voice already speaks 24 kHz mono."""

    def __init__(self, rate: int, channels: int = 1) -> None:
        super().__init__(rate, channels)
        self._converter = None
        if (rate, channels) != (OPENAI_PCM_RATE, 1):
            self._converter = PcmConverter(rate, WIDTH, channels, target_rate=OPENAI_PCM_RATE)

    def _encode(self, pcm: bytes) -> bytes:
        if self._converter is None or not pcm:
            return pcm
        return float_to_pcm16(self._converter.convert(pcm))

    def _close(self) -> bytes:
        return b"" if self._converter is None else float_to_pcm16(self._converter.flush())


class _Collector:
    """The file object FFmpeg writes to: it keeps what was written until taken. It has no
    `seek`, so muxers write a streamable file and never go back to patch a header."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


#: format name -> (FFmpeg muxer, encoder, muxer options). Ogg pages are cut every 60 ms,
#: not every second, so Opus audio leaves as soon as it is encoded.
_AV_FORMATS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", {}),
    "opus": ("ogg", "libopus", {"page_duration": "60000"}),
    "aac": ("adts", "aac", {}),
    "flac": ("flac", "flac", {}),
}


class AvEncoder(SpeechEncoder):
    """MP3, Ogg/Opus, AAC (ADTS) or FLAC through FFmpeg's encoders and muxers, flushed
    after every packet. The encoder's rate is the voice's when the codec takes it, else
    the next higher one it does (Opus at 22.05 kHz: 24 kHz; PyAV resamples on the way in)."""

    def __init__(self, name: str, rate: int, channels: int = 1) -> None:
        super().__init__(rate, channels)
        muxer, codec, options = _AV_FORMATS[name]
        self._out = _Collector()
        self._layout = "mono" if channels == 1 else "stereo"
        self._samples = 0
        try:
            self._container = av.open(self._out, mode="w", format=muxer, buffer_size=4096,
                                      container_options={"flush_packets": "1", **options})
            stream = self._container.add_stream(codec, rate=_codec_rate(codec, rate), layout=self._layout)
        except av.FFmpegError as err:
            raise AudioCodecError(f"cannot encode {name} here ({err.strerror or err})") from err
        assert isinstance(stream, av.AudioStream)
        self._stream = stream

    def _encode(self, pcm: bytes) -> bytes:
        if pcm:
            samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=self._layout)
            frame.sample_rate = self.rate
            frame.pts = self._samples
            frame.time_base = Fraction(1, self.rate)
            self._samples += samples.shape[1] // self.channels
            self._mux(frame)
        return self._out.take()

    def _close(self) -> bytes:
        self._mux(None)
        self._container.close()
        return self._out.take()

    def _mux(self, frame: av.AudioFrame | None) -> None:
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.FFmpegError as err:
            raise AudioCodecError(f"encoding failed ({err.strerror or err})") from err


def _codec_rate(codec: str, rate: int) -> int:
    """`rate` if the encoder takes it, else the lowest higher rate it takes (or its highest)."""
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or rate in rates:
        return rate
    higher = sorted(r for r in rates if r >= rate)
    return higher[0] if higher else max(rates)


def speech_encoder(response_format: str, rate: int, channels: int = 1) -> SpeechEncoder:
    """The encoder for one of SPEECH_MEDIA_TYPES, fed PCM of `rate` and `channels`."""
    if response_format == "wav":
        return WavEncoder(rate, channels)
    if response_format == "pcm":
        return OpenAiPcmEncoder(rate, channels)
    if response_format in _AV_FORMATS:
        return AvEncoder(response_format, rate, channels)
    raise AudioCodecError(f"response_format {response_format!r} is not one of {', '.join(SPEECH_MEDIA_TYPES)}")


async def encode_stream(pcm_pieces: AsyncIterable[bytes], encoder: SpeechEncoder) -> AsyncIterator[bytes]:
    """The encoded bytes of a stream of PCM pieces, each as soon as it is ready (for a
    streaming HTTP body); empty pieces are not yielded."""
    async for pcm in pcm_pieces:
        data = encoder.feed(pcm)
        if data:
            yield data
    data = encoder.finish()
    if data:
        yield data
