"""What a voice request is, for every service: its options on the wire, its speed range, and a
speaker by name or number.

The TTS service and the MQTT bridge both accept `speed`; it is checked once, against
the one range every backend can do (kokoro-onnx refuses anything outside 0.5-2.0; Piper
takes any length scale), so a request the bridge accepts is never refused later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def voice_options(name: str | None, language: str | None, speaker: str | None, speed: float | None
                  ) -> dict[str, Any]:
    """The voice options of a `synthesize` / `synthesize-start` event's data, as this project's
    TTS service reads them (wyoming_tts.handler): `voice` with every field that is set, and
    `speed` (not part of Wyoming 1.10) beside it.

    Not the wyoming package's SynthesizeVoice: its event keeps a speaker only together with
    a name and a language only without one, so a request for a speaker of the default voice
    lost its speaker on the way.
    """
    voice = {key: value for key, value in (("name", name), ("language", language), ("speaker", speaker))
             if value is not None}
    data: dict[str, Any] = {"voice": voice} if voice else {}
    if speed is not None and speed != 1.0:
        data["speed"] = speed
    return data
