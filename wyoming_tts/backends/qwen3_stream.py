"""Streaming Qwen3-TTS: codec frames as the talker makes them, decoded to audio in small windows.

The library's `generate` returns only when the whole sentence is done. Its talker,
though, completes one 12.5 Hz frame (16 codebooks) per decoding step, inside its own
forward pass; a forward hook on the talker hands each frame to the request that runs
`generate` in that thread (a thread-local sink, so concurrent requests do not mix). The
frames are decoded by the speech tokenizer's causal decoder in windows with 25 frames of
left context, the same scheme as the library's own `chunked_decode`, and the reference
clip's codes are that context for the first window, as the library's non-streaming path
decodes them too. The first window is `FIRST_FRAMES` long (early first audio), later ones
`CHUNK_FRAMES`.

Closing the iterator (client gone) makes the hook raise inside `generate`, which ends
the generation thread at the next frame.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

FIRST_FRAMES = 2
CHUNK_FRAMES = 6
LEFT_CONTEXT = 25
_END = object()


class _Stopped(Exception):
    """Raised inside generate by the frame hook when the consumer went away."""


class FrameTap:
    """A forward hook on the talker that passes each finished frame to this thread's sink."""

    def __init__(self, talker: Any) -> None:
        self._local = threading.local()
        talker.register_forward_hook(self._hook)

    def _hook(self, _module, _args, output) -> None:
        sink = getattr(self._local, "sink", None)
        if sink is None:
            return
        codec_ids = output.hidden_states[1] if isinstance(output.hidden_states, tuple) else None
        if codec_ids is not None:  # None on the prefill step
            sink(codec_ids[0].detach())

    def run(self, sink: Callable[[Any], None], generate: Callable[[], Any]) -> Any:
        self._local.sink = sink
        try:
            return generate()
        finally:
            self._local.sink = None


def stream_frames(tap: FrameTap, generate: Callable[[], Any], eos: int) -> Generator[Any, None, None]:
    """Frames (one tensor of codebook ids each) in order while `generate` runs in its own thread."""
    frames: queue.Queue = queue.Queue()
    stop = threading.Event()

    def sink(frame) -> None:
        if stop.is_set():
            raise _Stopped
        frames.put(frame)

    def work() -> None:
        try:
            tap.run(sink, generate)
        except _Stopped:
            pass
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            frames.put(err)
        frames.put(_END)

    thread = threading.Thread(target=work, name="qwen3-generate", daemon=True)
    thread.start()
    try:
        while (item := frames.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            if int(item[0]) == eos:
                continue
            yield item
    finally:
        stop.set()
        thread.join()


def decode_stream(decoder: Any, frames: Iterator[Any], context: Any | None, upsample: int) -> Iterator[np.ndarray]:
    """float32 audio for `frames`, window by window; `context` = the reference codes (T, Q) or None."""
    import torch

    history: list[Any] = list(context[-LEFT_CONTEXT:]) if context is not None else []
    pending = 0
    wanted = FIRST_FRAMES
    for frame in frames:
        history.append(frame)
        pending += 1
        if pending >= wanted:
            yield _decode(torch, decoder, history, pending, upsample)
            history = history[-LEFT_CONTEXT:]
            pending, wanted = 0, CHUNK_FRAMES
    if pending:
        yield _decode(torch, decoder, history, pending, upsample)


def _decode(torch: Any, decoder: Any, history: list[Any], new: int, upsample: int) -> np.ndarray:
    window = history[-(LEFT_CONTEXT + new):]
    codes = torch.stack([f.to(torch.long) for f in window]).clamp(min=0).T.unsqueeze(0)  # (1, Q, T)
    with torch.inference_mode():
        wav = decoder(codes.to(decoder.device))
    audio = wav[0, 0, (len(window) - new) * upsample:]
    return audio.float().cpu().numpy()
