"""The voice core: sessions, services, settings and validation, with no transport in it."""
