"""onnxruntime sessions on the CPU for voices that serve several requests at once.

onnxruntime's default intra-op threads spin while they wait for work, so for a while
after each run they keep their cores busy: the time of another request's run, in this
process (the worker beside it) or in another. Measured on 2 cores, a Piper voice's
first pieces (4 words, 2 synthesized at once through the 2 workers): 213 ms p50 /
285 ms p95 with the defaults, 204 / 238 ms without spinning; 4 at once: 377 / 531 ms
vs 294 / 459 ms; one alone: 115 vs 118 ms (`bench/tts_floors.py`).

The thread count and spinning change no sum the model computes: with the noise off,
a voice on these sessions gives the same bytes as piper-tts' own loading, alone and
with requests at once (tests/test_tts_piper_sessions.py).
"""

from __future__ import annotations

import os
from typing import Any


def cpu_session(model: str | bytes, threads: int) -> Any:
    """An onnxruntime CPU session of `threads` intra-op threads that never spin."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
