"""Audio helpers: validate Wyoming audio formats and convert any PCM to 16 kHz mono.

Speech models want 16 kHz mono float32; clients send whatever their microphone
gives. `PcmConverter` converts chunk by chunk (resampling with libswresample via
PyAV, which faster-whisper already depends on), so streaming decoders can work
on audio as it arrives.
"""

from __future__ import annotations

import numpy as np

#: Samples per second of the audio speech models take (STT decodes everything at this rate;
#: it is also the bridge's default STT format).
SPEECH_RATE = 16000
MIN_RATE = 1000
MAX_RATE = 384_000
WIDTHS = (1, 2, 4)
MAX_CHANNELS = 16


class AudioFormatError(ValueError):
    """An audio format or chunk that cannot be interpreted (Wyoming code `invalid_format`)."""


def check_format(rate: object, width: object, channels: object) -> tuple[int, int, int]:
    for name, value in (("rate", rate), ("width", width), ("channels", channels)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise AudioFormatError(f"audio {name} must be an integer, got {value!r}")
    assert isinstance(rate, int) and isinstance(width, int) and isinstance(channels, int)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(f"audio rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE}")
    if width not in WIDTHS:
        raise AudioFormatError(f"audio width {width} is not supported (use 1, 2 or 4 bytes)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"audio channels {channels} is outside 1..{MAX_CHANNELS}")
    return rate, width, channels


def pcm_to_float(pcm: bytes, width: int, channels: int) -> np.ndarray:
    """Little-endian PCM -> mono float32 in [-1, 1] (channels averaged)."""
    frame = width * channels
    if len(pcm) % frame:
        raise AudioFormatError(
            f"chunk of {len(pcm)} bytes is not a multiple of width x channels ({frame})"
        )
    if width == 1:  # 8-bit PCM is unsigned
        samples = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = np.frombuffer(pcm, dtype="<i4").astype(np.float32) / 2147483648.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class PcmConverter:
    """Streams PCM of one format into SPEECH_RATE (or `target_rate`) mono float32.

    Chunk boundaries are transport framing, not sample boundaries: Home Assistant's STT web
    API forwards a request body in pieces of any byte count. A partial sample frame at the
    end of a chunk is kept and completed by the next one; only a stream whose total is not
    whole frames is an error, reported by `flush` at the end.
    """

    def __init__(self, rate: int, width: int, channels: int, target_rate: int = SPEECH_RATE) -> None:
        self.rate, self.width, self.channels = check_format(rate, width, channels)
        self.target_rate = target_rate
        self.frame_bytes = width * channels
        self.total_bytes = 0
        self._carry = b""
        self._resampler = None
        if rate != target_rate:
            import av  # PyAV ships with faster-whisper

            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)

    def convert(self, pcm: bytes) -> np.ndarray:
        self.total_bytes += len(pcm)
        if self._carry:
            pcm = self._carry + pcm
        whole = len(pcm) - len(pcm) % self.frame_bytes
        self._carry = pcm[whole:]
        samples = pcm_to_float(pcm[:whole], self.width, self.channels)
        if self._resampler is None or samples.size == 0:
            return samples
        return self._resample(samples)

    def flush(self) -> np.ndarray:
        """Samples the resampler still holds at the end of the stream.

        Raises AudioFormatError when the stream's total is not a whole number of frames.
        """
        if self._carry:
            raise AudioFormatError(
                f"audio stream of {self.total_bytes} bytes is not a whole number of samples "
                f"(width {self.width} x channels {self.channels} = {self.frame_bytes} bytes each)"
            )
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resample(None)

    def _resample(self, samples: np.ndarray | None) -> np.ndarray:
        import av

        frame = None
        if samples is not None:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
            )
            frame.sample_rate = self.rate
        assert self._resampler is not None
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
