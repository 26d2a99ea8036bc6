"""The bridge's core: what every front (MQTT, HTTP) shares, and which imports no front."""
