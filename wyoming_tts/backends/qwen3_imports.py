"""Importing the `qwen-tts` library without the packages our path never runs.

qwen-tts 0.1.1 imports, at package import, the code of its 25 Hz speech tokenizer (the
V1 checkpoints), which needs `sox` (a binding to the SoX program) and `torchaudio` (its
Kaldi filterbank). The 12 Hz checkpoints this backend loads never call either, and
torchaudio would pull a CUDA build of torch into a CPU install. So, only when they are not
installed, an empty placeholder module stands in for each at import time (nothing else
is patched): any use of one raises AttributeError, which would mean a 25 Hz model, and
those are refused before loading. Installing the real packages makes the placeholders
unnecessary; they are then never created. `gradio` (the library's demo UI) is not
imported by the library itself and is not installed by the `clone` extra.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

from .base import BackendError

#: Modules qwen-tts imports for its 25 Hz tokenizer only; placeholders when missing.
UNUSED_IMPORTS = ("sox", "torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi")
INSTALL_HINT = "pip install 'wyoming-voice-services[clone]' (torch, qwen-tts --no-deps; see docs/voices.md)"


def _placeholder(name: str) -> types.ModuleType:
    module = types.ModuleType(name, f"placeholder: {name} is not installed and not used by the 12 Hz models")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return module


def _install_placeholders() -> list[str]:
    made = []
    for name in UNUSED_IMPORTS:
        if name in sys.modules:
            continue
        parent = name.partition(".")[0]
        if parent in made or importlib.util.find_spec(parent) is None:
            sys.modules[name] = _placeholder(name)
            made.append(name)
            if "." in name:
                owner, _, attr = name.rpartition(".")
                setattr(sys.modules[owner], attr, sys.modules[name])
    return made


def import_qwen_tts() -> Any:
    """The `qwen_tts` package (BackendError with the install line when torch or it is missing)."""
    for needed in ("torch", "transformers", "qwen_tts"):
        if importlib.util.find_spec(needed) is None:
            raise BackendError(f"--backend qwen3 needs {needed}: {INSTALL_HINT}")
    _install_placeholders()
    try:
        # qwen-tts prints a flash-attn notice on import: to stderr, never into a stdio:// stream
        with contextlib.redirect_stdout(sys.stderr):
            return importlib.import_module("qwen_tts")
    except ImportError as err:
        raise BackendError(f"qwen-tts could not be imported ({err}): {INSTALL_HINT}") from err
