"""Test helpers shared by all suites: free ports, server subprocesses, speech, WER."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
JFK_FLAC = DATA / "jfk.flac"
JFK_TEXT = (
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open within {timeout} s")


class ServerProcess:
    """A service started as `python -m MODULE` on a free port, logging to a file."""

    def __init__(self, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix=f"{module}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--uri", self.uri, *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=REPO,
        )

    def wait_ready(self, timeout: float = 90.0) -> "ServerProcess":
        try:
            wait_for_port(self.port, self.proc, timeout)
        except Exception as err:
            raise RuntimeError(f"{err}\n--- log ---\n{self.log()}") from err
        return self

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def decode_audio(path: Path, rate: int = 16000) -> bytes:
    """Any audio file -> 16-bit mono PCM at `rate` (PyAV ships with faster-whisper)."""
    import av

    out = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(out).astype("<i2").tobytes()


def espeak(text: str, rate: int = 16000) -> bytes:
    """Speech from espeak-ng (Debian package) as 16-bit mono PCM at `rate`."""
    return espeak_voice(text, "en-us", rate)


def espeak_voice(text: str, voice: str, rate: int = 16000, speed: int = 150) -> bytes:
    """espeak-ng speaking `text` with `voice` (e.g. en-gb, en-us+f3) as 16-bit mono PCM."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", wav.name, text], check=True)
        return decode_audio(Path(wav.name), rate)


def silence(seconds: float, rate: int = 16000) -> bytes:
    return b"\0\0" * int(seconds * rate)


def normalize_words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    dist = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, dist[0] = dist[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(dist[j] + 1, dist[j - 1] + 1, prev + (r != h))
            prev, dist[j] = dist[j], cur
    return dist[len(hyp)] / max(1, len(ref))
