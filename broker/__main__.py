"""`python -m broker` / `wyoming-voice-broker`: the MQTT bridge to the Wyoming services."""

from __future__ import annotations

from voice_common.app import main_entry, setup_logging

from .app import run_bridge
from .config import parse_config


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    setup_logging(config.log_level)
    main_entry(lambda: run_bridge(config))


if __name__ == "__main__":
    main()
