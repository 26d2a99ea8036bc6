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
    from broker.config import BridgeConfig
    from voice_common.config import options_markdown
    from voice_common.settings import options_of
    from wyoming_stt.config import SttConfig
    from wyoming_tts.config import TtsConfig

    return {
        name: options_markdown(config.PREFIX, options_of(config))
        for name, config in (("stt", SttConfig), ("tts", TtsConfig), ("broker", BridgeConfig))
    }


def render(readme: str) -> str:
    for name, table in tables().items():
        pattern = re.compile(rf"(<!-- options:{name} -->\n).*?(<!-- /options:{name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- options:{name} --> block")
        readme = pattern.sub(lambda m, table=table: m.group(1) + table + m.group(2), readme)
    return readme


if __name__ == "__main__":
    path = REPO / "README.md"
    path.write_text(render(path.read_text()))
