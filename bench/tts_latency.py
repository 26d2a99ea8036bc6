"""TTS latency benchmark of our server: time to first audio, real-time factor, fairness, memory.

    .venv/bin/python bench/tts_latency.py [--runs 10] [--backends piper,kokoro] [--quick]

Starts `python -m wyoming_tts` per backend on a free loopback port (audio cache off, so
every request is synthesized), talks to it over real TCP and prints a markdown table.
Every request gets a fresh sentence (`bench.sentences`: none twice, no two with the same
first words), each backend the same ones in the same order.
TTFA = from writing `synthesize` to the first `audio-chunk`; RTF = time from the request
to `audio-stop` divided by the seconds of audio.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make the bench package importable

from bench.common import free_port, pct  # noqa: E402
from bench.sentences import Fresh  # noqa: E402

VOICES = {"piper": "en_US-joe-medium", "kokoro": "jf_alpha"}


class Server:
    def __init__(self, backend: str, *extra: str) -> None:
        self.port = free_port()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wyoming_tts", "--uri", f"tcp://127.0.0.1:{self.port}", "--backend", backend,
             "--cache-mb", "0", "--log-level", "WARNING", *extra],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.ready_s = self._wait()

    def _wait(self) -> float:
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.01)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


async def synthesize(port: int, text: str, voice: str) -> tuple[float, float, float]:
    """-> (seconds to first audio chunk, seconds to audio-stop, seconds of audio)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        start = time.perf_counter()
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event())
        first, samples, rate = None, 0, 1
        while True:
            event = await client.read_event()
            if event is None or event.type == "error":
                raise RuntimeError(f"server answered {event}")
            if event.type == "audio-start":
                rate = event.data["rate"]
            elif event.type == "audio-chunk":
                first = first or time.perf_counter() - start
                samples += len(event.payload) // 2
            elif event.type == "audio-stop":
                return first or float("nan"), time.perf_counter() - start, samples / rate


async def streamed(port: int, voice: str, pieces: list[str], completes: int, pause: float = 0.5) -> float:
    """Seconds from sending the piece that completes sentence one (language-model output,
    `pieces[completes]`) to the first audio chunk."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=voice)).event())
        first: list[float] = []

        async def read() -> None:
            while (event := await client.read_event()) is not None and event.type != "synthesize-stopped":
                if event.type == "audio-chunk" and not first:
                    first.append(time.perf_counter())

        reader = asyncio.ensure_future(read())
        completed_at = 0.0
        for i, piece in enumerate(pieces):
            await client.write_event(SynthesizeChunk(text=piece).event())
            if i == completes:
                completed_at = time.perf_counter()
            await asyncio.sleep(pause)
        await client.write_event(SynthesizeStop().event())
        await reader
        return first[0] - completed_at


async def together(port: int, voice: str, texts: list[str]) -> list[float]:
    results = await asyncio.gather(*(synthesize(port, text, voice) for text in texts))
    return [r[0] for r in results]


def bench_backend(backend: str, runs: int, quick: bool, extra: list[str]) -> dict[str, str]:
    voice = VOICES[backend]
    row: dict[str, str] = {}
    fresh = Fresh()
    server = Server(backend, *extra)
    try:
        row["ready s"] = f"{server.ready_s:.2f}"
        cold = asyncio.run(synthesize(server.port, fresh.one(), voice))[0]
        row["1st req TTFA ms"] = f"{cold * 1000:.0f}"
        for label, text in (("10 words", fresh.one), ("60 words", fresh.paragraph)):
            stats = [asyncio.run(synthesize(server.port, text(), voice)) for _ in range(runs)]
            ttfa = [s[0] * 1000 for s in stats]
            rtf = [s[1] / s[2] for s in stats]
            row[f"TTFA {label} p50/p95 ms"] = f"{statistics.median(ttfa):.0f} / {pct(ttfa, 0.95):.0f}"
            row[f"RTF {label} p50"] = f"{statistics.median(rtf):.3f}"
        if not quick:
            piece = [asyncio.run(streamed(server.port, voice, *fresh.stream(mid_piece=True))) * 1000 for _ in range(max(3, runs // 3))]
            row["stream: after completing piece p50 ms"] = f"{statistics.median(piece):.0f}"
            for clients in (2, 4):
                ttfa = [t * 1000 for _ in range(max(3, runs // clients))
                        for t in asyncio.run(together(server.port, voice, fresh.take(clients)))]
                row[f"{clients} clients TTFA p50/p95 ms"] = f"{statistics.median(ttfa):.0f} / {pct(ttfa, 0.95):.0f}"
            if backend == "piper":  # Kokoro needs minutes for 10 000 characters on 2 cores
                long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 230)[:10000]
                asyncio.run(synthesize(server.port, long_text, voice))
                row["peak RSS MB (10k chars, no punctuation)"] = f"{server.peak_rss_mb():.0f}"
    finally:
        server.stop()
    print(backend, row, file=sys.stderr, flush=True)
    return row


def bench_clients(backend: str, runs: int, _quick: bool, extra: list[str]) -> dict[str, str]:
    voice, row, fresh = VOICES[backend], {}, Fresh()
    server = Server(backend, *extra)
    try:
        asyncio.run(synthesize(server.port, fresh.one(), voice))
        for clients in (1, 2, 4):
            ttfa = [t * 1000 for _ in range(max(5, runs // clients))
                    for t in asyncio.run(together(server.port, voice, fresh.take(clients)))]
            row[f"{clients} clients TTFA p50/p95 ms"] = f"{statistics.median(ttfa):.0f} / {pct(ttfa, 0.95):.0f}"
    finally:
        server.stop()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per measurement (p50 over them)")
    parser.add_argument("--backends", default="piper,kokoro")
    parser.add_argument("--quick", action="store_true", help="only TTFA and RTF")
    parser.add_argument("--only-clients", action="store_true", help="only the 2/4-client fairness rows")
    parser.add_argument("--server-args", default="", help="extra server flags, e.g. '--workers 1'")
    args = parser.parse_args()
    extra = args.server_args.split()
    bench = bench_clients if args.only_clients else bench_backend
    rows = {name: bench(name, args.runs, args.quick, extra) for name in args.backends.split(",")}
    keys = list(next(iter(rows.values())))
    print("| measure | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in keys:
        print(f"| {key} | " + " | ".join(row.get(key, "") for row in rows.values()) + " |")


if __name__ == "__main__":
    main()
