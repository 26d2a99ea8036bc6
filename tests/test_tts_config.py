"""config/tts.toml and --help: every option documented, the example accepted by the loader."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import REPO
from voice_common.config import resolve
from wyoming_tts.__main__ import OPTIONS

EXAMPLE = REPO / "config" / "tts.toml"


def test_example_config_names_every_option_and_loads():
    text = EXAMPLE.read_text()
    keys = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, re.M))
    assert {opt.name for opt in OPTIONS} <= keys
    config = resolve("wyoming-tts", "", "TTS", OPTIONS, ["--config", str(EXAMPLE)], {})
    assert config.backend == "piper" and config.fallback == ["kokoro"] and config.uri.endswith(":10200")


def test_commented_values_are_valid_too(tmp_path):
    """Uncommenting any example line must still give a configuration the loader accepts."""
    path = tmp_path / "tts.toml"
    path.write_text(re.sub(r"^# (\w+ = )", r"\1", EXAMPLE.read_text(), flags=re.M))
    config = resolve("wyoming-tts", "", "TTS", OPTIONS, ["--config", str(path)], {})
    assert config.kokoro_model.endswith("kokoro-v1.0.onnx") and config.zeroconf == ""


def test_help_lists_every_flag_and_environment_twin():
    out = subprocess.run([sys.executable, "-m", "wyoming_tts", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    flat = re.sub(r"\s+", "", out)  # argparse wraps long help lines
    for opt in OPTIONS:
        assert opt.flag in out and opt.env_name("TTS") in flat, opt.name
