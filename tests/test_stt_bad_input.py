"""Every failure gets a Wyoming `error` event (text + code) and then the connection closes."""

from __future__ import annotations

import json
import socket
import time

import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event, read_event, write_event

from helpers import ServerProcess, espeak
from tts_helpers import metrics


@pytest.fixture(scope="module")
def stt():
    server = ServerProcess(
        "wyoming_stt", "--max-sessions", "1", "--read-timeout", "1", "--idle-timeout", "2",
        "--max-audio-seconds", "3", "--max-frame-bytes", "65536", "--http", "127.0.0.1:0", "--max-queued", "0",
    ).wait_ready()
    yield server
    assert server.terminate() == 0
    log = server.log()
    assert "Task exception was never retrieved" not in log and "Traceback" not in log, log


class Raw:
    """A plain socket, so tests can send what no well-behaved client would."""

    def __init__(self, port: int) -> None:
        # A socket timeout only detects a hung server; the server's own timeouts are 1-2 s.
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.rfile = self.sock.makefile("rb")
        self.wfile = self.sock.makefile("wb")

    def send(self, *events: Event) -> None:
        for event in events:
            write_event(event, self.wfile)

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def expect_error(self, code: str) -> dict:
        event = read_event(self.rfile)
        while event is not None and event.type.startswith("transcript"):
            event = read_event(self.rfile)
        assert event is not None and event.type == "error", event
        assert event.data["code"] == code, event.data
        assert event.data["text"]
        assert self.rfile.read() == b"", "server must close after an error"
        return event.data

    def close(self) -> None:
        self.rfile.close()
        self.wfile.close()
        self.sock.close()


def chunk(pcm: bytes, rate=16000, width=2, channels=1) -> Event:
    return AudioChunk(rate, width, channels, pcm).event()


def wait_active_sessions(server: ServerProcess, count: int) -> None:
    """Until the server's gauge says `count` transcriptions hold a slot (its own word, not a sleep)."""
    deadline = time.monotonic() + 60  # failure detection only
    while metrics(server)["wyoming_stt_active_sessions"] != count:
        assert time.monotonic() < deadline, f"active sessions never reached {count}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "rate,width,channels", [(0, 2, 1), (16000, 3, 1), (16000, 2, 0), (-5, 2, 1), (10**9, 2, 1)]
)
def test_impossible_formats(stt, rate, width, channels):
    raw = Raw(stt.port)
    raw.send(Transcribe().event(), AudioStart(rate, width, channels).event())
    raw.expect_error("invalid_format")


def test_stream_of_partial_samples_refused_at_stop(stt):
    """Chunks may split a sample (transport framing); a stream whose total does not end on a
    whole frame is refused, at audio-stop, naming its byte count."""
    raw = Raw(stt.port)
    raw.send(AudioStart(16000, 2, 2).event(), chunk(b"\0" * 6, channels=2), chunk(b"\0" * 3, channels=2))
    raw.send(AudioStop().event())
    data = raw.expect_error("invalid_format")
    assert "9 bytes" in data["text"], data


def test_chunk_format_differs_from_start(stt):
    raw = Raw(stt.port)
    raw.send(AudioStart(16000, 2, 1).event(), chunk(b"\0" * 4, rate=8000))
    raw.expect_error("invalid_format")


def test_huge_payload_header_refused_before_reading(stt):
    raw = Raw(stt.port)
    header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},
              "payload_length": 256 * 1024 * 1024}
    raw.send_bytes(json.dumps(header).encode() + b"\n")
    # No payload byte is ever sent: a server that tried to read it first would answer
    # `timeout` (--read-timeout 1), so `too_large` proves the header alone was judged.
    raw.expect_error("too_large")


def test_frame_that_never_completes_times_out(stt):
    raw = Raw(stt.port)
    raw.send(AudioStart(16000, 2, 1).event())
    header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 4096}
    start = time.monotonic()  # before sending: the server's clock starts after it reads the header
    raw.send_bytes(json.dumps(header).encode() + b"\n" + b"\0" * 100)
    data = raw.expect_error("timeout")
    # The body's --read-timeout (1 s) fired, not the --idle-timeout (2 s) between events.
    assert "did not arrive within 1 s" in data["text"], data
    assert time.monotonic() - start >= 1.0


def test_idle_between_chunks_times_out(stt):
    raw = Raw(stt.port)
    start = time.monotonic()
    raw.send(AudioStart(16000, 2, 1).event(), chunk(b"\0" * 2048))
    data = raw.expect_error("timeout")
    assert "no event received for 2 s" in data["text"], data
    assert time.monotonic() - start >= 2.0


@pytest.mark.parametrize(
    "garbage", [b"\x00\xffGARBAGE\n", b"{not json}\n", b"[1,2,3]\n", b'{"data": {}}\n', b'{"type": "x", "payload_length": -1}\n']
)
def test_garbage_and_malformed_json(stt, garbage):
    raw = Raw(stt.port)
    raw.send_bytes(garbage)
    raw.expect_error("bad_request")


def test_events_out_of_order(stt):
    raw = Raw(stt.port)
    raw.send(chunk(b"\0" * 2048))
    raw.expect_error("bad_request")
    raw = Raw(stt.port)
    raw.send(AudioStop().event())
    raw.expect_error("bad_request")


def test_audio_longer_than_limit(stt):
    raw = Raw(stt.port)
    raw.send(AudioStart(16000, 2, 1).event())
    raw.send(*(chunk(b"\0" * 32000) for _ in range(4)))
    raw.expect_error("too_large")


def test_busy_beyond_max_sessions_then_freed(stt):
    wait_active_sessions(stt, 0)  # what earlier tests left has been released
    first = Raw(stt.port)
    first.send(AudioStart(16000, 2, 1).event(), chunk(b"\0" * 2048))
    wait_active_sessions(stt, 1)  # the only slot is taken
    second = Raw(stt.port)
    second.send(AudioStart(16000, 2, 1).event())
    second.expect_error("busy")
    first.close()  # disconnect mid-stream frees the slot
    wait_active_sessions(stt, 0)
    third = Raw(stt.port)
    pcm = espeak("hello there")[: 16000 * 2 * 2]
    third.send(Transcribe(language="en").event(), AudioStart(16000, 2, 1).event(), chunk(pcm), AudioStop().event())
    event = read_event(third.rfile)
    while event.type != "transcript":
        assert event.type.startswith("transcript"), event
        event = read_event(third.rfile)
    third.close()


def test_disconnect_mid_stream_leaves_server_healthy(stt):
    for _ in range(3):
        raw = Raw(stt.port)
        raw.send(AudioStart(16000, 2, 1).event(), chunk(espeak("turn on the light")[:32000]))
        raw.close()
    wait_active_sessions(stt, 0)  # every slot the vanished clients held is given back
    raw = Raw(stt.port)
    raw.send(Event(type="describe"))
    assert read_event(raw.rfile).type == "info"
    raw.close()
