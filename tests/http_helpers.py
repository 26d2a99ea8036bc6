"""A bridge serving only its HTTP front (`--no-mqtt --api`) against the real STT and TTS servers,
with API keys made by the real `keys` CLI. Import the fixtures into a test module to use them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO, free_port
from mqtt_helpers import _once

#: Limits of the shared HTTP bridge, small enough for the abuse tests to reach quickly.
API_BRIDGE_ARGS = ("--idle-timeout", "3", "--max-audio-seconds", "30", "--max-sessions", "6",
                   "--max-chunk-bytes", "32768", "--api-max-text-chars", "600", "--api-max-streams-per-key", "3")


def keys_cli(db: Path, *args: str) -> str:
    """`python -m broker keys ARGS --db DB`; its stdout (a created key: the token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    out = subprocess.run([sys.executable, "-m", "broker", "keys", *args, "--db", str(db)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


class ApiBridge:
    """`python -m broker --no-mqtt --api 127.0.0.1:PORT` with its own key database."""

    def __init__(self, *args: str) -> None:
        self.db = Path(tempfile.mkdtemp(prefix="api-bridge-")) / "settings.sqlite3"
        self.args = list(args)
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="api-bridge-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None
        self.key = keys_cli(self.db, "create", "tester")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> ApiBridge:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
        cmd = [sys.executable, "-m", "broker", "--no-mqtt", "--api", f"127.0.0.1:{self.port}", "--db", str(self.db),
               "--no-discover", *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={**env, "PYTHONUNBUFFERED": "1"}, cwd=REPO)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited with {self.proc.returncode}\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bridge not ready within {timeout} s\n{self.log()}")
            time.sleep(0.2)
        self.wait_services(timeout)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_services(self, timeout: float) -> None:
        """Until the services are described (voices listed), the bridge's own word."""
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{self.url}/v1/models", headers={"Authorization": f"Bearer {self.key}"})
            with urllib.request.urlopen(request, timeout=5) as resp:
                owners = {m["owned_by"] for m in json.load(resp)["data"]}
            if len(owners) >= 2:
                return
            time.sleep(0.2)
        raise TimeoutError(f"services not listed within {timeout} s\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def api_bridge(request, stt_server, tts_server) -> ApiBridge:
    def start() -> ApiBridge:
        return ApiBridge("--stt", stt_server.uri, "--tts", tts_server.uri, *API_BRIDGE_ARGS).start()

    def stop(bridge: ApiBridge) -> None:
        assert bridge.stop() == 0, bridge.log()
        log = bridge.log()
        assert "Traceback" not in log, log
        assert bridge.key not in log  # keys never reach the log
        assert "fellow Americans" not in log  # nor transcripts, at INFO

    return _once(request, "api_bridge", start, stop)
