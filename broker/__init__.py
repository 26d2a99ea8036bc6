"""MQTT bridge to the Wyoming STT/TTS services (API in docs/mqtt.md)."""
