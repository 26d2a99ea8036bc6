"""SIGTERM ends every connection with `shutting_down` within a second, even one whose client
never pauses, and one whose client stopped reading.

A client that streams without a break keeps a read completing at every turn of the
event loop; Python 3.11's `asyncio.wait_for` then drops the cancellation that
SIGTERM sends, and the server used to live on until the client left. These
clients stream as fast as the server reads (audio to STT, text to TTS) while
reading what comes back, the way a satellite does.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, write_event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart

from helpers import ServerProcess, silence

#: Generous bounds so a loaded machine cannot fail the test; the measured times are printed
#: (`pytest -s`) and are well under a second on a quiet machine.
ERROR_BOUND_S = 10.0
EXIT_BOUND_S = 15.0


async def _stream_then_sigterm(server: ServerProcess, opening: list[Event], next_event) -> dict:
    """Stream events without pause, SIGTERM the server mid-stream, time what follows."""
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        for event in opening:
            await client.write_event(event)
        streaming = True
        received: list[Event] = []
        error_at: list[float] = []

        async def write() -> None:
            while streaming:
                try:
                    await client.write_event(next_event())
                except (ConnectionError, OSError):
                    return
                await asyncio.sleep(0)

        async def read() -> None:
            while True:
                try:
                    event = await client.read_event()
                except (ConnectionError, OSError):
                    return
                if event is None:
                    return
                received.append(event)
                if event.type == "error":
                    error_at.append(time.monotonic())
                    return

        writer = asyncio.ensure_future(write())
        reader = asyncio.ensure_future(read())
        await asyncio.sleep(2.0)  # well into the stream
        assert not reader.done(), [e.type for e in received]
        sent_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(reader, ERROR_BOUND_S)
        except TimeoutError:
            pass
        loop = asyncio.get_running_loop()
        exit_code = await loop.run_in_executor(None, _wait_exit, server, EXIT_BOUND_S)
        exited_at = time.monotonic()
        streaming = False
        writer.cancel()
        reader.cancel()
        client._writer = None  # the server is gone: nothing left to close politely
    errors = [e for e in received if e.type == "error"]
    return {
        "error": errors[-1].data if errors else None,
        "error_s": error_at[0] - sent_at if error_at else None,
        "exit_code": exit_code,
        "exit_s": exited_at - sent_at,
    }


def _wait_exit(server: ServerProcess, timeout: float) -> int | None:
    try:
        return server.proc.wait(timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: reported by the caller
        return None


def _check(result: dict, server: ServerProcess, what: str) -> None:
    log = server.log()
    print(f"{what}: SIGTERM -> shutting_down {result['error_s'] if result['error_s'] is None else round(result['error_s'], 3)} s, -> exit {result['exit_s']:.2f} s")
    assert result["error"] is not None, f"no error event after SIGTERM\n{log}"
    assert result["error"]["code"] == "shutting_down", result["error"]
    assert result["error_s"] < ERROR_BOUND_S
    assert result["exit_code"] == 0, f"server still running {EXIT_BOUND_S} s after SIGTERM\n{log}"
    assert "Traceback" not in log and "never retrieved" not in log, log


def test_sigterm_while_a_client_streams_audio_to_stt():
    server = ServerProcess("wyoming_stt", "--max-audio-seconds", "1000000", "--idle-timeout", "60").wait_ready()
    try:
        chunk = silence(0.02)  # 20 ms; sent as fast as the server takes them
        result = asyncio.run(_stream_then_sigterm(
            server,
            [Transcribe(language="en").event(), AudioStart(16000, 2, 1).event()],
            lambda: AudioChunk(16000, 2, 1, chunk).event(),
        ))
        _check(result, server, "stt")
    finally:
        server.terminate()


def test_sigterm_while_a_client_streams_text_to_tts():
    server = ServerProcess("wyoming_tts", "--max-text-chars", "100000000", "--idle-timeout", "60").wait_ready()
    try:
        words = iter(range(10**9))
        result = asyncio.run(_stream_then_sigterm(
            server,
            [SynthesizeStart().event()],
            lambda: SynthesizeChunk(text=f"Word {next(words)} of a text that never ends. ").event(),
        ))
        _check(result, server, "tts")
    finally:
        server.terminate()


def _send_queue(server_port: int, client_port: int) -> int | None:
    """Bytes the server's socket to this client has not got out (Linux /proc/net/tcp)."""
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            return int(fields[4].split(":")[0], 16)
    return None


def test_sigterm_with_a_client_that_stopped_reading():
    """The shutting_down error cannot be written to a client that reads nothing: the server
    aborts that connection after a short grace instead of waiting for the 30 s write timeout."""
    server = ServerProcess("wyoming_tts", "--cache-mb", "0").wait_ready()
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            text = " ".join(f"Sentence number {i} is here to make the audio long." for i in range(150))
            with sock.makefile("wb") as out:
                write_event(Synthesize(text=text).event(), out)
            # Until the server's audio stops moving: its socket is full and its writes wait.
            client_port = sock.getsockname()[1]
            deadline, last = time.monotonic() + 120, None
            while time.monotonic() < deadline:
                time.sleep(1.0)
                queued = _send_queue(server.port, client_port)
                if queued and queued == last:
                    break
                last = queued
            sent_at = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            code = _wait_exit(server, EXIT_BOUND_S)
            print(f"tts, client not reading: SIGTERM -> exit {time.monotonic() - sent_at:.2f} s")
        log = server.log()
        assert code == 0, f"server still running {EXIT_BOUND_S} s after SIGTERM\n{log}"
        assert "aborting 1 connection" in log, log
        assert "Traceback" not in log, log
    finally:
        server.terminate()
