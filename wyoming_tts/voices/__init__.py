"""Voice profiles (cloned voices) of the TTS service, shared by every backend that can clone.

A profile is a folder `voices/<name>/` with a reference clip and a small manifest
(`profiles`), created and deleted at run time by the Wyoming events of
`voice_common.voice_events` (the bridge sends them too); and
the cache of clone prompts computed from a profile by a backend (`prompt_cache`). A backend
never reads a profile's clip itself: it is handed a prepared prompt.
"""

from .profiles import ProfileError, VoiceProfile, VoiceStore
from .prompt_cache import PromptCache, PromptEncoder

__all__ = ["ProfileError", "PromptCache", "PromptEncoder", "VoiceProfile", "VoiceStore"]
