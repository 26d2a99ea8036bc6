"""Opt-in (`--short-context`): encode only the audio that is there, not Whisper's 30 s window.

faster-whisper pads every segment to 3000 mel frames (30 s) before the encoder, so a 3 s
command costs as much encoder work as 30 s of speech. CTranslate2's Whisper encoder accepts
shorter inputs; encoding the audio plus 2 s (at least 10 s) is about 3x faster.

It is off by default because it is not exact: Whisper was trained on 30 s windows, and on
a varied set of short commands (both bundled models, 8-44.1 kHz, quiet and loud) the words
differ from the full window's in roughly one case in six, mostly borderline ones, and the
tiny model can repeat a short command twice. Output that looks wrong (a loop, a repeated
phrase, text placed after the audio ends) is decoded again with the full window, but a
plausible different word cannot be caught. The speculative final (endpoint.py) hides most
of the full window's cost for live audio without changing any word.
"""

from __future__ import annotations

from voice_common.audio import SPEECH_RATE

FRAMES_PER_SECOND = 100  # Whisper mel frames
FULL_WINDOW = 3000
MIN_FRAMES = 1000  # 10 s
MARGIN_FRAMES = 200  # 2 s of padding after the audio
MAX_COMPRESSION_RATIO = 2.0
MAX_WORDS_PER_SECOND = 5.0


def encoder_frames(samples: int, rate: int = SPEECH_RATE) -> int:
    """Frames to encode for `samples` of audio: the audio plus a margin, at least 10 s."""
    content = samples * FRAMES_PER_SECOND // rate + 1
    return min(FULL_WINDOW, max(MIN_FRAMES, content + MARGIN_FRAMES))


def hallucinated(text: str, segments: list, seconds: float) -> bool:
    """A short-context decode that went wrong: a loop (compressible text, implausibly fast
    speech), the same phrase twice in a row, or text placed after the audio ended."""
    words = text.split()
    if len(words) > MAX_WORDS_PER_SECOND * max(seconds, 1.0):
        return True
    if any(seg.compression_ratio > MAX_COMPRESSION_RATIO for seg in segments):
        return True
    if any(seg.end > seconds + 1.0 for seg in segments):
        return True
    norm = [w.strip(".,!?;:\"'").lower() for w in words]
    for size in range(2, len(norm) // 2 + 1):
        for i in range(len(norm) - 2 * size + 1):
            if norm[i:i + size] == norm[i + size:i + 2 * size]:
                return True
    return False
