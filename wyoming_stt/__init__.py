"""Wyoming speech-to-text server (faster-whisper by default)."""
