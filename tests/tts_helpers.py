"""Helpers for the TTS suites: a wyoming client for synthesize/streams, transcription, metrics."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from dataclasses import dataclass, field

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from helpers import ServerProcess

BUNDLED_PIPER = "en_US-joe-medium"


@dataclass
class Reply:
    """Everything a server sent for one request, with arrival times."""

    events: list[Event] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def audio(self) -> bytes:
        return b"".join(e.payload or b"" for e in self.events if e.type == "audio-chunk")

    @property
    def rate(self) -> int:
        (start,) = [e for e in self.events if e.type == "audio-start"]
        return start.data["rate"]

    @property
    def error_code(self) -> str | None:
        errors = [e for e in self.events if e.type == "error"]
        return errors[-1].data.get("code") if errors else None

    def first_audio_time(self) -> float:
        return next(t for e, t in zip(self.events, self.times) if e.type == "audio-chunk")


async def read_reply(client: AsyncTcpClient, reply: Reply, until: tuple[str, ...], timeout: float = 300) -> Reply:
    """Events until one of `until` (or an error). `timeout` only detects a hang: 10 000
    characters took Piper 105 s on a 2-core machine with both cores busy elsewhere."""
    async def loop() -> None:
        while True:
            event = await client.read_event()
            if event is None:
                return
            reply.events.append(event)
            reply.times.append(time.perf_counter())
            if event.type in until or event.type == "error":
                return

    await asyncio.wait_for(loop(), timeout)
    return reply


def voice(name: str | None = None, language: str | None = None, speaker: str | None = None):
    return SynthesizeVoice(name=name, language=language, speaker=speaker) if (name or language) else None


async def synthesize(port: int, text: str, *, name=None, language=None, speaker=None, extra=None) -> Reply:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        event = Synthesize(text=text, voice=voice(name, language, speaker)).event()
        event.data.update(extra or {})
        await client.write_event(event)
        return await read_reply(client, Reply(), ("audio-stop",))


async def stream(port: int, chunks: list[str], *, name=None, pause: float = 0.0, compat: bool = True,
                 audio_after: int | None = None) -> tuple[Reply, float]:
    """Home Assistant's streaming sequence; returns the reply and when the last chunk was sent.

    With `audio_after=n`, the rest of the text is held back after n chunks until the first
    audio chunk has arrived (which proves, by order, that audio starts before the text ends).
    """
    async with AsyncTcpClient("127.0.0.1", port) as client:
        reply = Reply()
        reader = asyncio.ensure_future(read_reply(client, reply, ("synthesize-stopped",)))
        await client.write_event(SynthesizeStart(voice=voice(name)).event())
        last_sent = 0.0
        for index, chunk in enumerate(chunks):
            if index == audio_after:
                while "audio-chunk" not in reply.types:
                    assert not reader.done(), f"the reply ended before any audio: {reply.types}"
                    await asyncio.wait({reader}, timeout=0.05)
            await asyncio.sleep(pause)
            await client.write_event(SynthesizeChunk(text=chunk).event())
            last_sent = time.perf_counter()
        if compat:  # HA sends the whole text once more for servers without streaming
            await client.write_event(Synthesize(text="".join(chunks), voice=voice(name)).event())
        await client.write_event(SynthesizeStop().event())
        await reader
        return reply, last_sent


def run(coro):
    return asyncio.run(coro)


class Transcriber:
    """The project's STT server with the bundled tiny.en model: audio in any format -> text."""

    def __init__(self) -> None:
        self.server = ServerProcess("wyoming_stt", "--max-sessions", "8").wait_ready()

    async def transcribe(self, pcm: bytes, rate: int) -> str:
        async with AsyncTcpClient("127.0.0.1", self.server.port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate, 2, 1).event())
            step = 1024 * 2
            for i in range(0, len(pcm), step):
                await client.write_event(AudioChunk(rate, 2, 1, pcm[i:i + step]).event())
            await client.write_event(AudioStop().event())
            while True:
                event = await asyncio.wait_for(client.read_event(), 120)
                assert event is not None, "STT server closed the connection"
                assert event.type != "error", event.data
                if Transcript.is_type(event.type):
                    return Transcript.from_event(event).text

    def __call__(self, pcm: bytes, rate: int) -> str:
        return run(self.transcribe(pcm, rate))

    def close(self) -> None:
        assert self.server.terminate() == 0


def metrics(server: ServerProcess) -> dict[str, float]:
    """The server's /metrics as {'name{labels}': value} (needs --http 127.0.0.1:0)."""
    port = int(re.search(r"health and metrics on http://127\.0\.0\.1:(\d+)", server.log()).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def start_tts(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    return ServerProcess("wyoming_tts", "--http", "127.0.0.1:0", *args, env=env).wait_ready()


def stop_tts(server: ServerProcess) -> str:
    """SIGTERM must end the server cleanly (exit 0) with no traceback in its log."""
    code = server.terminate()
    log = server.log()
    assert code == 0, log
    assert "Traceback" not in log and "never retrieved" not in log, log
    return log
