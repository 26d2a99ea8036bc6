"""What a voice request is, for every service: its speed range, and a speaker by name or number.

The TTS service and the MQTT bridge both accept `speed`; it is checked once, against
the one range every backend can do (kokoro-onnx refuses anything outside 0.5-2.0; Piper
takes any length scale), so a request the bridge accepts is never refused later.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Speaking rate: 1.0 is the voice's natural pace, 2.0 twice as fast.
MIN_SPEED, MAX_SPEED = 0.5, 2.0


def check_speed(value: object) -> float:
    """A request's `speed` (JSON); ValueError unless a number within the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_SPEED <= value <= MAX_SPEED:
        raise ValueError(f"'speed' must be a number from {MIN_SPEED} to {MAX_SPEED}, got {value!r}")
    return float(value)


def speed_option(value: object) -> float:
    """`--speed` (a flag, environment or TOML value)."""
    return check_speed(float(str(value)))



def speaker_index(speaker: str, speakers: Sequence[str]) -> int | None:
    """Which of a voice's `speakers` (in speaker-id order, as `info` lists them) `speaker`
    names: a name, or a number as text ("0", "1", ...); None when it names none of them."""
    if speaker in speakers:
        return list(speakers).index(speaker)
    if speaker.isdigit() and int(speaker) < len(speakers):
        return int(speaker)
    return None
