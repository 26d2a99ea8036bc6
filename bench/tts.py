"""TTS benchmark: one server (ours or the reference) against the same texts.

TTFA (time to first audio) = from writing `synthesize` to the first `audio-chunk`.
Streamed text is sent the way Home Assistant sends it to a server whose info says
`supports_synthesize_streaming`: synthesize-start, one synthesize-chunk per piece (0.5 s
apart), the full `synthesize` (for old servers), synthesize-stop. A server without
streaming gets what Home Assistant does then: one `synthesize` once all the text is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from .common import HOST, Server, describe, summary

#: Ten-word sentences (rotated so that no request repeats the previous one).
SENTENCES = [
    "Please turn off the lights in the living room right now.",
    "The kitchen window is open and it is starting to rain.",
    "Your next meeting with the design team starts in ten minutes.",
    "I have set an alarm for seven thirty tomorrow morning, okay?",
    "The washing machine has finished and the clothes are ready now.",
    "It is twenty one degrees inside and fourteen degrees outside today.",
    "Dinner is ready, please come to the table and sit down.",
    "The garage door was left open, shall I close it now?",
]
PARAGRAPH = (
    "Good evening. The weather today was mostly sunny with a light breeze from the west, and "
    "tomorrow will bring some clouds in the morning. In the afternoon there is a small chance of "
    "rain, so you may want to take an umbrella with you. The front door is locked, the garage is "
    "closed, and all the lights downstairs are turned off. Sleep well."
)  # 60 words
#: Language-model output, 0.5 s apart. (pieces, index of the piece completing sentence one)
STREAMS = {
    "at piece end": (["The living room lig", "hts are now off and the ", "doors are locked.",
                      " Tomorrow will be cloudy with light ", "rain in the afternoon."], 2),
    "mid piece": (["The living room lig", "hts are now off and the ", "doors are locked. Tomor",
                   "row will be cloudy with light ", "rain in the afternoon."], 2),
}
PIECE_GAP = 0.5
TIMEOUT = 120.0


def long_text(chars: int = 10000) -> str:
    """`chars` characters of words with no sentence punctuation at all."""
    words = ("the lights in the living room stay on while the music plays softly and the "
             "kitchen smells of fresh bread").split()
    out, i = [], 0
    while sum(len(w) + 1 for w in out) <= chars:
        out.append(words[i % len(words)])
        i += 1
    text = " ".join(out)[:chars]
    return text[:-1] + "s" if text.endswith(" ") else text


class Reader:
    """Reads one response: first-chunk time, audio seconds, end time, error."""

    def __init__(self, client: AsyncTcpClient, until: str) -> None:
        self.client, self.until = client, until
        self.first: float | None = None
        self.end: float | None = None
        self.samples = 0
        self.rate, self.width, self.channels = 22050, 2, 1
        self.error: str | None = None

    async def run(self) -> "Reader":
        while True:
            event = await self.client.read_event()
            if event is None:
                self.error = self.error or "connection closed, no error sent"
                return self
            if event.type == "audio-start":
                self.rate = event.data.get("rate", self.rate)
                self.width = event.data.get("width", self.width)
                self.channels = event.data.get("channels", self.channels)
            elif event.type == "audio-chunk":
                if self.first is None:
                    self.first = time.perf_counter()
                self.samples += len(event.payload or b"") // (self.width * self.channels)
            elif Error.is_type(event.type):
                err = Error.from_event(event)
                self.error = f"error {err.code}: {err.text[:120]}"
                return self
            if event.type == self.until:
                self.end = time.perf_counter()
                return self

    @property
    def audio_s(self) -> float:
        return self.samples / self.rate


async def synthesize(port: int, text: str, timeout: float = TIMEOUT) -> tuple[float, float, float]:
    """-> (TTFA s, seconds to audio-stop, seconds of audio). Raises on an error."""
    client = AsyncTcpClient(HOST, port)
    await asyncio.wait_for(client.connect(), 10)
    try:
        start = time.perf_counter()
        await client.write_event(Synthesize(text=text).event())
        reader = await asyncio.wait_for(Reader(client, "audio-stop").run(), timeout)
        if reader.error or reader.first is None:
            raise RuntimeError(reader.error or "no audio")
        return reader.first - start, reader.end - start, reader.audio_s
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


async def streamed(port: int, pieces: list[str], completes: int, streaming: bool) -> float:
    """Seconds from writing the piece that completes sentence one to the first audio chunk."""
    client = AsyncTcpClient(HOST, port)
    await asyncio.wait_for(client.connect(), 10)
    try:
        reader = Reader(client, "synthesize-stopped" if streaming else "audio-stop")
        task = asyncio.ensure_future(reader.run())
        completed_at = 0.0
        if streaming:
            await client.write_event(SynthesizeStart().event())
        for i, piece in enumerate(pieces):
            if streaming:
                await client.write_event(SynthesizeChunk(text=piece).event())
            if i == completes:
                completed_at = time.perf_counter()
            if i < len(pieces) - 1:
                await asyncio.sleep(PIECE_GAP)
        await client.write_event(Synthesize(text="".join(pieces)).event())
        if streaming:
            await client.write_event(SynthesizeStop().event())
        await asyncio.wait_for(task, TIMEOUT)
        if reader.error or reader.first is None:
            raise RuntimeError(reader.error or "no audio")
        return reader.first - completed_at
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


async def together(port: int, clients: int, offset: int) -> tuple[list[float], list[str]]:
    """`clients` requests written at the same moment; each one's TTFA (s), and errors."""
    texts = [SENTENCES[(offset + i) % len(SENTENCES)] for i in range(clients)]
    results = await asyncio.gather(*(synthesize(port, t) for t in texts), return_exceptions=True)
    return ([r[0] for r in results if not isinstance(r, BaseException)],
            [str(r) for r in results if isinstance(r, BaseException)])


async def memory_test(server: Server, timeout: float) -> dict:
    """10 000 characters without sentence punctuation: peak RSS and what came back."""
    text = long_text()
    server.reset_peak()
    client = AsyncTcpClient(HOST, server.port)
    await asyncio.wait_for(client.connect(), 10)
    start = time.perf_counter()
    outcome: str
    reader = Reader(client, "audio-stop")
    try:
        await client.write_event(Synthesize(text=text).event())
        try:
            await asyncio.wait_for(reader.run(), timeout)
            if reader.error:
                outcome = reader.error
            else:
                outcome = f"audio {reader.audio_s:.0f} s in {time.perf_counter() - start:.0f} s"
        except asyncio.TimeoutError:
            outcome = f"no answer within {timeout:.0f} s ({reader.audio_s:.0f} s audio so far)"
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
    await asyncio.sleep(0.2)
    if server.killed:
        outcome = (f"killed by the bench watchdog at {server.watch.killed_at_bytes / 2**30:.1f} GB "
                   f"after {time.perf_counter() - start:.0f} s; " + outcome)
    return {"chars": len(text), "peak_mb": server.peak_mb, "killed": server.killed, "outcome": outcome}


async def cold_start(name: str, argv: list[str], log_dir: Path) -> dict:
    with Server(name, argv, log_dir=log_dir) as server:
        ready = await server.wait_ready()
        first = (await synthesize(server.port, SENTENCES[0]))[0]
        answered = time.perf_counter() - server.started_at
        later = [(await synthesize(server.port, SENTENCES[i]))[0] for i in (1, 2)]
    return {"ready_s": ready, "first_answer_s": answered, "first_ms": first * 1000,
            "later_ms": sorted(later)[1] * 1000}


async def run_servers(servers: dict[str, list[str]], *, quick: bool, mem_timeout: float,
                      kill_above_mb: float, log_dir: Path, log) -> dict:
    """Cold starts one at a time; then all servers up at once, every measurement interleaved
    server by server; last the long text, one server at a time (a runaway is killed)."""
    results: dict = {name: {"name": name, "argv": argv} for name, argv in servers.items()}
    for name, argv in servers.items():
        colds = [await cold_start(f"{name}-cold", argv, log_dir) for _ in range(1 if quick else 3)]
        results[name]["cold"] = {k: sorted(c[k] for c in colds)[len(colds) // 2] for k in colds[0]}
        log(f"  {name} cold start: " + ", ".join(f"{k} {v:.2f}" for k, v in results[name]["cold"].items()))

    running: dict[str, Server] = {}
    try:
        for name, argv in servers.items():
            running[name] = Server(name, argv, log_dir=log_dir, kill_above_mb=kill_above_mb)
        streaming: dict[str, bool] = {}
        for name, server in running.items():
            await server.wait_ready()
            info = await describe(server.port)
            streaming[name] = any(getattr(p, "supports_synthesize_streaming", False) for p in info.tts)
            results[name]["streaming"] = streaming[name]
            await synthesize(server.port, SENTENCES[-1])  # warm-up (loads a lazy voice)

        def each(fn_key: str, values: dict[str, list[float]]) -> None:
            for name in running:
                results[name][fn_key] = summary(values[name])
            log(f"  {fn_key}: " + ", ".join(f"{n} p50 {results[n][fn_key]['p50']:.0f} ms / p95 "
                                             f"{results[n][fn_key]['p95']:.0f} ms" for n in running))

        ttfa: dict[str, list[float]] = {name: [] for name in running}
        for i in range(8 if quick else 20):
            for name, server in running.items():
                ttfa[name].append((await synthesize(server.port, SENTENCES[i % len(SENTENCES)]))[0] * 1000)
        each("ttfa", ttfa)

        for label, (pieces, completes) in STREAMS.items():
            values: dict[str, list[float]] = {name: [] for name in running}
            for _ in range(2 if quick else 5):
                for name, server in running.items():
                    values[name].append(await streamed(server.port, pieces, completes, streaming[name]) * 1000)
            each(f"stream {label}", values)

        for clients in (1, 2, 4, 8):
            for name, server in running.items():
                ok_all: list[float] = []
                errors: list[str] = []
                for rep in range(2 if quick else 4):
                    ok, failed = await together(server.port, clients, rep)
                    ok_all += [t * 1000 for t in ok]
                    errors += failed
                results[name].setdefault("clients", {})[clients] = {
                    **summary(ok_all), "errors": len(errors), "error": errors[:1]}
                c = results[name]["clients"][clients]
                log(f"  {name} {clients} clients: p50 {c['p50']:.0f} ms, p95 {c['p95']:.0f} ms"
                    + (f", {len(errors)} failed: {errors[0]}" if errors else ""))

        rtf: dict[str, list[float]] = {name: [] for name in running}
        for _ in range(2 if quick else 4):
            for name, server in running.items():
                _first, total, audio = await synthesize(server.port, PARAGRAPH)
                rtf[name].append(total / audio)
        for name in running:
            results[name]["rtf"] = summary(rtf[name])
            results[name]["peak_rss_mb"] = running[name].peak_mb
        log("  RTF: " + ", ".join(f"{n} {results[n]['rtf']['p50']:.3f}" for n in running))

        for name in sorted(running, key=lambda n: n != "ours"):  # ours first: the reference may be killed
            results[name]["memory"] = await memory_test(running[name], mem_timeout)
            m = results[name]["memory"]
            log(f"  {name} {m['chars']} chars: peak {m['peak_mb']:.0f} MB, {m['outcome']}")
    finally:
        for server in running.values():
            server.stop()
    return results
