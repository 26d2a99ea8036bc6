"""scripts/run.sh starts the three services and says so in one line once they all answer."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time

from helpers import REPO, free_port


def test_run_sh_prints_one_ready_line_with_every_address(tmp_path):
    stt, tts, mqtt = free_port(), free_port(), free_port()
    env = {
        **os.environ, "RUN_SETUP": "0", "RUN_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1",
        "STT_URI": f"tcp://127.0.0.1:{stt}", "TTS_URI": f"tcp://127.0.0.1:{tts}",
        "BROKER_MQTT_PORT": str(mqtt), "BROKER_DB": str(tmp_path / "settings.sqlite3"),
    }
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=log, start_new_session=True)
    lines: list[str] = []
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 300  # generous: three services load their models at once
        while time.monotonic() < deadline and not any(line.startswith("run: ready") for line in lines):
            if selector.select(timeout=1):
                line = proc.stdout.readline().decode()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
        ready = [line for line in lines if line.startswith("run: ready")]
        log.seek(0)
        assert ready, "\n".join(lines) + "\n--- stderr ---\n" + log.read().decode(errors="replace")[-5000:]
        assert ready == [f"run: ready \u2014 stt tcp://127.0.0.1:{stt}, tts tcp://127.0.0.1:{tts}, "
                         f"bridge mqtt://127.0.0.1:{mqtt} (prefix voice/)"], ready
        assert lines[0].startswith("run: no MQTT broker"), lines  # then the embedded one was started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, code
    with subprocess.Popen(["pgrep", "-s", str(proc.pid)], stdout=subprocess.PIPE) as left:
        assert left.communicate()[0] == b"", "run.sh left processes behind"
