"""faster-whisper's WhisperModel with two hooks: an opt-in short encoder window, and a
cache of whole-window results that makes repeated decodes of a growing utterance cheap.

Long speech is decoded window by window (30 s each). While it streams in, early decodes
(partials, the speculative final at each pause) decode its first windows again and again,
and the final decode would once more. The result of one window is a pure function of its
mel features, the prompt tokens and the decoding options, so it is kept, keyed by exactly
those bytes and values: a hit returns what the same computation returned before, and the
output cannot change. Windows whose features differ in any bit (more audio in them, a
louder frame later in the stream shifting Whisper's log-mel floor, or a BLAS that rounds
the mel matrix product of a longer stream differently: OpenBLAS 0.3.31 in numpy 2.4 changes
a few values of a window's features by one ulp when the stream grows) simply miss.

The hooks override `encode` and `generate_with_fallback`, which are not faster-whisper's
public API; faster-whisper is pinned, and tests/test_stt_window_cache.py fails loudly if
an upgrade changes how they are called.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
from faster_whisper import WhisperModel

#: Window results kept (an encoder output is 2-8 MB depending on the model).
CACHE_WINDOWS = 12


class CachingWhisperModel(WhisperModel):
    """WhisperModel with a per-thread encoder limit and an exact LRU of window results."""

    def __init__(self, *args, cache_windows: int = CACHE_WINDOWS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._capacity = cache_windows
        #: features key -> encoder output; id(encoder output) -> features key.
        self._encoded: OrderedDict[bytes, object] = OrderedDict()
        self._keys: dict[int, bytes] = {}
        self._generated: OrderedDict[tuple, tuple] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def set_encoder_frames(self, frames: int | None) -> None:
        """Trim the encoder input of this thread's next decodes to `frames` (None: full window)."""
        self._local.frames = frames

    def encode(self, features: np.ndarray):
        frames = getattr(self._local, "frames", None)
        if frames is not None and features.shape[-1] > frames:
            features = np.ascontiguousarray(features[..., :frames])
        features = np.ascontiguousarray(features, dtype=np.float32)
        key = hashlib.blake2b(features.tobytes(), digest_size=20, person=str(features.shape).encode()[:16]).digest()
        with self._lock:
            cached = self._encoded.get(key)
            if cached is not None:
                self._encoded.move_to_end(key)
                return cached
        output = super().encode(features)
        with self._lock:
            self._encoded[key] = output
            self._keys[id(output)] = key
            while len(self._encoded) > self._capacity:
                _old_key, old = self._encoded.popitem(last=False)
                self._keys.pop(id(old), None)
        return output

    def generate_with_fallback(self, encoder_output, prompt, tokenizer, options):
        with self._lock:
            features_key = self._keys.get(id(encoder_output))
        if features_key is None:  # an encoder output we did not make (language detection)
            return super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
        key = (features_key, tuple(prompt), tokenizer.language_code, tokenizer.task, repr(options))
        with self._lock:
            cached = self._generated.get(key)
            if cached is not None:
                self._generated.move_to_end(key)
                self.hits += 1
                return cached
        result = super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
        with self._lock:
            self.misses += 1
            self._generated[key] = result
            while len(self._generated) > 4 * self._capacity:
                self._generated.popitem(last=False)
        return result
