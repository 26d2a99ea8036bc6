"""`python -m broker` / `wyoming-voice-broker`: the MQTT bridge to the Wyoming services."""

from __future__ import annotations

import sys

from voice_common.app import main_entry, setup_logging

from .app import run_bridge
from .config import parse_config


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["keys"]:  # `wyoming-voice-broker keys ...`: the API keys, not the bridge
        from .keys_cli import main as keys_main

        keys_main(args[1:])
    config = parse_config(argv)
    setup_logging(config.log_level)
    main_entry(lambda: run_bridge(config))


if __name__ == "__main__":
    main()
