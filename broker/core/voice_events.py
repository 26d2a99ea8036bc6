"""The Wyoming voice-profile events, imported from one place.

They are defined by the TTS service today (wyoming_tts.voices.events) and move to
voice_common at integration; the bridge imports them only here, so that move is one line.
"""

from __future__ import annotations

from wyoming_tts.voices.events import (
    ProfileSupport,
    VoiceCreate,
    VoiceCreated,
    VoiceDelete,
    VoiceDeleted,
    profile_support,
)

__all__ = ["ProfileSupport", "VoiceCreate", "VoiceCreated", "VoiceDelete", "VoiceDeleted", "profile_support"]
