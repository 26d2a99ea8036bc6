"""Options the reference servers have: `--debug` and `--uri stdio://` (events on stdin/stdout)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import read_event, write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize

from helpers import JFK_FLAC, JFK_TEXT, REPO, decode_audio, word_error_rate
from voice_common.config import resolve


@pytest.mark.parametrize("module", ["wyoming_stt", "wyoming_tts", "broker"])
def test_debug_is_log_level_debug(module):
    if module == "broker":
        from broker.config import parse_config

        config = parse_config(["--debug"])
    else:
        main = __import__(f"{module}.__main__", fromlist=["OPTIONS"])
        prefix = "STT" if module == "wyoming_stt" else "TTS"
        config = resolve(module, "", prefix, main.OPTIONS, ["--debug"], {})
        assert resolve(module, "", prefix, main.OPTIONS, [], {f"{prefix}_DEBUG": "1"}).log_level == "DEBUG"
        assert resolve(module, "", prefix, main.OPTIONS, [], {}).log_level == "INFO"
    assert config.log_level == "DEBUG"


def test_debug_logs_at_debug_level():
    proc = subprocess.run([sys.executable, "-m", "wyoming_tts", "--debug", "--uri", "stdio://"],
                          input=b"", capture_output=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b" DEBUG " in proc.stderr, proc.stderr


class StdioServer:
    """A service started with --uri stdio://: we are its only client, through its pipes."""

    def __init__(self, module: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--uri", "stdio://", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        )

    def send(self, *events) -> None:
        for event in events:
            write_event(event.event() if hasattr(event, "event") else event, self.proc.stdin)
        self.proc.stdin.flush()

    def read_until(self, *types: str) -> list:
        events = []
        while True:
            event = read_event(self.proc.stdout)
            assert event is not None, self.stderr()
            events.append(event)
            if event.type in types or event.type == "error":
                return events

    def stderr(self) -> str:
        self.proc.stdin.close()
        self.proc.wait(60)
        return self.proc.stderr.read().decode(errors="replace")


def test_stt_over_stdio_transcribes_and_ends_with_stdin():
    server = StdioServer("wyoming_stt")
    server.send(Describe())
    (info,) = server.read_until("info")
    assert info.data["asr"][0]["models"][0]["name"] == "tiny.en"
    pcm = decode_audio(JFK_FLAC)
    server.send(Transcribe(language="en"), AudioStart(16000, 2, 1))
    for i in range(0, len(pcm), 8000):
        server.send(AudioChunk(16000, 2, 1, pcm[i:i + 8000]))
    server.send(AudioStop())
    events = server.read_until("transcript")
    assert word_error_rate(JFK_TEXT, events[-1].data["text"]) < 0.2, events[-1].data
    log = server.stderr()  # closes stdin: the service ends by itself
    assert server.proc.returncode == 0, log
    rest = []
    while (event := read_event(server.proc.stdout)) is not None:  # only events on stdout, to the end
        rest.append(event.type)
    assert rest == ["transcript-stop"], rest
    assert "ready" in log and "Traceback" not in log, log


def test_tts_over_stdio_speaks_and_stops_on_sigterm():
    server = StdioServer("wyoming_tts")
    server.send(Synthesize(text="Hello from a pipe."))
    events = server.read_until("audio-stop")
    assert events[0].type == "audio-start" and sum(len(e.payload or b"") for e in events) > 10000
    server.proc.send_signal(signal.SIGTERM)
    (error,) = server.read_until("error")
    assert error.data["code"] == "shutting_down"
    assert server.proc.wait(30) == 0
    log = server.proc.stderr.read().decode(errors="replace")
    assert "Traceback" not in log, log


def test_stdio_refuses_a_file_as_stdout(tmp_path):
    out = tmp_path / "out.bin"
    with open(out, "wb") as handle:
        proc = subprocess.run([sys.executable, "-m", "wyoming_tts", "--uri", "stdio://"], stdin=subprocess.PIPE,
                              stdout=handle, stderr=subprocess.PIPE, cwd=REPO, timeout=60, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "stdout must be a pipe" in proc.stderr
