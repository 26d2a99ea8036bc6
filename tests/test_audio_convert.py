"""PcmConverter: chunk boundaries are framing, not sample boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from voice_common.audio import AudioFormatError, PcmConverter


def _stream(pcm: bytes, sizes, rate=16000, width=2, channels=1) -> np.ndarray:
    conv = PcmConverter(rate, width, channels)
    out, pos, i = [], 0, 0
    while pos < len(pcm):
        size = sizes[i % len(sizes)]
        out.append(conv.convert(pcm[pos:pos + size]))
        pos += size
        i += 1
    out.append(conv.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("width,channels", [(2, 1), (2, 2), (4, 2), (1, 1), (2, 3)])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_any_chunking_gives_the_same_samples(width, channels, rate):
    rng = np.random.default_rng(7)
    pcm = rng.integers(0, 256, size=width * channels * rate // 4, dtype=np.uint8).tobytes()
    whole = _stream(pcm, [len(pcm)], rate, width, channels)
    for sizes in ([1], [3, 5], [2009], [width * channels * 100 + 1, 1]):
        assert np.array_equal(_stream(pcm, sizes, rate, width, channels), whole), sizes


def test_stream_that_ends_mid_sample_is_refused_at_flush():
    conv = PcmConverter(16000, 2, 2)
    assert conv.convert(b"\0" * 5).size == 1  # one whole stereo frame; one byte carried
    with pytest.raises(AudioFormatError, match="5 bytes"):
        conv.flush()
