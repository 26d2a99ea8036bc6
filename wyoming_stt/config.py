"""The STT service's configuration: every option once, with its default (see voice_common.settings).

`SttConfig` is what the service resolves at start; the faster-whisper backend receives
only its section, `WhisperConfig`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from voice_common.config import non_negative_int, positive_float, positive_int
from voice_common.settings import ServerConfig, Settings, setting

Backend = Literal["faster-whisper"]


@dataclass(frozen=True, kw_only=True)
class WhisperConfig(Settings):
    """What the faster-whisper backend reads, and nothing more."""

    model: str = setting(
        "tiny.en", "Model: a bundled short name (tiny.en; base with the [multilingual] extra), a local "
        "CTranslate2 model directory, or a hub name such as small or Systran/faster-whisper-small")
    device: Literal["cpu", "cuda", "auto"] = setting("cpu", "Inference device")
    compute_type: str = setting("auto", "CTranslate2 compute type (auto: int8 on CPU, float16 on CUDA)")
    cpu_threads: int = setting(0, "CPU threads per decode (0 = CPU cores / workers)", parse=non_negative_int)
    workers: int = setting(2, "Decodes that may run at once (CTranslate2 workers; 2 x 1 thread beats 1 x 2 "
                           "threads in throughput)", parse=positive_int)
    vad: bool = setting(True, "Drop non-speech with Silero VAD before decoding (no words from silence)")
    short_context: bool = setting(
        False, "Encode only the audio plus 2 s (at least 10 s) instead of Whisper's 30 s window: ~3x faster "
        "decodes, but words can differ from the full window's (opt-in)")
    no_speech_threshold: float = setting(0.6, "Drop segments whose no-speech probability is above this")
    download_dir: str | None = setting(None, "Where hub models are downloaded/cached (default: the Hugging "
                                       "Face cache)")
    local_files_only: bool = setting(False, "Never download a hub model; use only the local cache")

    def __post_init__(self) -> None:
        if self.cpu_threads == 0:
            self._set("cpu_threads", max(1, (os.cpu_count() or 2) // self.workers))
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class SttConfig(WhisperConfig, ServerConfig):
    """`wyoming-stt`: the server, the backend's section, and what requests are decoded with."""

    PREFIX = "STT"
    SERVICE = "stt"

    uri: str = "tcp://0.0.0.0:10300"
    max_sessions: int = 16  # sessions are cheap; --workers bound the CPU
    max_queued: int = setting(64, "Requests that may wait for a session when --max-sessions are in "
                              "progress (their audio waits in the socket); more get 'busy'",
                              parse=non_negative_int)
    queue_timeout: float = setting(30.0, "Seconds a request may wait for a session before it gets 'busy'",
                                   parse=positive_float)
    backend: Backend = setting("faster-whisper", "Speech-to-text backend")
    beam_size: int = setting(5, "Beam size (5: the most accurate, faster-whisper's default; 1: greedy, faster)",
                             parse=positive_int)
    language: str | None = setting(None, "Default language when the client sends none (e.g. en)")
    initial_prompt: str | None = setting(None, "Text that biases decoding (names, spelling, style)")
    max_audio_seconds: float = setting(60.0, "Longest audio accepted per request", parse=positive_float)
    streaming: bool = setting(True, "Send transcript-start/-chunk/-stop streaming events")
    partial_interval: float = setting(1.0, "Seconds of new audio between partial decodes", parse=positive_float)
