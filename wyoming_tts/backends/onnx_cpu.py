"""onnxruntime sessions on the CPU for voices that serve several requests at once.

onnxruntime's intra-op threads spin while they wait for work. Between the operators of one
run that is what makes it fast, but by default they go on spinning after the run has
returned, keeping the cores busy for nothing: time taken from the request beside it, the
other worker, or the STT service on the same machine. `session.force_spinning_stop` ends
the spinning when a run returns: after a Piper run, the defaults burn 53-63 ms of CPU in
the next 300 ms with nothing to do, ours 0. Measured on 2 cores, 20 rounds of Piper first pieces
(4 words) through 2 worker threads, the same pieces for each setup, p50 / p95:

| session | one alone | 2 at once | 4 at once |
|---|---|---|---|
| onnxruntime's defaults | 124 / 149 ms | 258 / 329 ms | 390 / 615 ms |
| no spinning at all | 144 / 178 ms | 246 / 328 ms | 345 / 528 ms |
| spinning stopped after each run (ours) | 129 / 169 ms | 248 / 318 ms | 370 / 594 ms |

Runs at once gain a little (within this machine's noise); no spinning at all would gain more
there but costs a run alone 15% (its threads sleep between operators), and one request at a
time is the common case. `bench/tts_floors.py` measures it again.

The thread settings change no sum the model computes: with the noise off, a voice on these
sessions gives the same bytes as piper-tts' own loading, alone and with requests at once,
and Kokoro the same as kokoro-onnx's (tests/test_tts_onnx_sessions.py).
"""

from __future__ import annotations

import os
from typing import Any


def cpu_session(model: str | bytes, threads: int) -> Any:
    """An onnxruntime CPU session of `threads` intra-op threads that stop spinning when a run ends."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
