"""Regenerate the option tables in README.md from the code (`python scripts/options_tables.py`).

The tables sit between `<!-- options:NAME -->` and `<!-- /options:NAME -->` markers; a test
fails when the README and the code disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def tables() -> dict[str, str]:
    from broker.config import OPTIONS as BROKER_OPTIONS, PREFIX as BROKER_PREFIX
    from voice_common.config import options_markdown
    from wyoming_stt.__main__ import OPTIONS as STT_OPTIONS
    from wyoming_tts.__main__ import OPTIONS as TTS_OPTIONS

    return {
        "stt": options_markdown("STT", STT_OPTIONS),
        "tts": options_markdown("TTS", TTS_OPTIONS),
        "broker": options_markdown(BROKER_PREFIX, BROKER_OPTIONS),
    }


def render(readme: str) -> str:
    for name, table in tables().items():
        pattern = re.compile(rf"(<!-- options:{name} -->\n).*?(<!-- /options:{name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- options:{name} --> block")
        readme = pattern.sub(lambda m: m.group(1) + table + m.group(2), readme)
    return readme


if __name__ == "__main__":
    path = REPO / "README.md"
    path.write_text(render(path.read_text()))
