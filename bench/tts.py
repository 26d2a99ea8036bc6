"""TTS benchmark: one server (ours or the reference) against the same texts.

TTFA (time to first audio) = from writing `synthesize` to the first `audio-chunk`.
Every latency request gets a sentence no request of the run had before, whose first words
no other sentence has either (`bench.sentences`): no cached sentence or sentence head can
answer it. Request *i* of a measurement gets the same sentence on every server. Our server
runs with `--cache-mb 0` for these; the audio cache has its own rows (`cache`: a server of
ours at its default cache size, the same sentence asked again and again).
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

from .common import HOST, Server, describe, distribution, measure, summary
from .sentences import Fresh

#: Requests per measurement: (full run, --quick).
COUNTS = {"ttfa": (20, 8), "stream": (5, 2), "clients_rounds": (4, 2), "rtf": (4, 2),
          "cold": (3, 1), "cache_sentences": (5, 3), "cache_repeats": (6, 4)}
CLIENTS = (1, 2, 4, 8)
STREAM_CASES = {"at piece end": False, "mid piece": True}  # label -> sentence one ends mid piece
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


async def together(port: int, texts: list[str]) -> tuple[list[float], list[str]]:
    """One request per text, all written at the same moment; each one's TTFA (s), and errors."""
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


def plan(quick: bool) -> dict:
    """Which fresh sentence each request gets, fixed before any server starts: the same for
    every server (request i gets sentence i) and for both modes (side by side, alone)."""
    fresh = Fresh()
    n = {key: quick_n if quick else full for key, (full, quick_n) in COUNTS.items()}
    out = {
        "cold": [fresh.take(3) for _ in range(n["cold"])],
        "warmup": fresh.one(),
        "ttfa": fresh.take(n["ttfa"]),
        "stream": {label: [fresh.stream(mid_piece=mid) for _ in range(n["stream"])]
                   for label, mid in STREAM_CASES.items()},
        "clients": {c: [fresh.take(c) for _ in range(n["clients_rounds"])] for c in CLIENTS},
        "rtf": [fresh.paragraph() for _ in range(n["rtf"])],
        "cache_warmup": fresh.one(),
        "cache": fresh.take(n["cache_sentences"]),
        "cache_repeats": n["cache_repeats"],
    }
    out["sentences_used"] = fresh.used
    return out


async def cold_start(name: str, argv: list[str], texts: list[str], log_dir: Path) -> dict:
    """Process start -> describe answered; then the first request and two more (fresh texts)."""
    with Server(name, argv, log_dir=log_dir) as server:
        ready = await server.wait_ready()
        first = (await synthesize(server.port, texts[0]))[0]
        answered = time.perf_counter() - server.started_at
        later = [(await synthesize(server.port, text))[0] for text in texts[1:]]
    return {"ready_s": ready, "first_answer_s": answered, "first_ms": first * 1000,
            "later_ms": sorted(later)[len(later) // 2] * 1000}


async def run_servers(servers: dict[str, list[str]], *, quick: bool, mem_timeout: float,
                      kill_above_mb: float, log_dir: Path, log, alone: bool = False,
                      cache_servers: dict[str, list[str]] | None = None) -> dict:
    """Cold starts one server at a time; then the measurements, side by side (all servers up,
    every request interleaved server by server) or `alone` (one server process at a time);
    the long text last (ours first: the reference may be killed). Then the audio cache:
    `cache_servers` (ours with its cache on, and the reference for comparison) on a repeated
    sentence, in the same mode."""
    script = plan(quick)
    log(f"  {script['sentences_used']} fresh sentences planned (none asked twice, all first words distinct)")
    results: dict = {name: {"name": name, "argv": argv} for name, argv in {**servers, **(cache_servers or {})}.items()}
    for name, argv in servers.items():
        colds = [await cold_start(f"{name}-cold", argv, texts, log_dir) for texts in script["cold"]]
        results[name]["cold"] = {k: sorted(c[k] for c in colds)[len(colds) // 2] for k in colds[0]}
        log(f"  {name} cold start: " + ", ".join(f"{k} {v:.2f}" for k, v in results[name]["cold"].items()))

    async def main(running: dict[str, Server]) -> None:
        streaming: dict[str, bool] = {}
        for name, server in running.items():
            info = await describe(server.port)
            streaming[name] = any(getattr(p, "supports_synthesize_streaming", False) for p in info.tts)
            results[name]["streaming"] = streaming[name]
            await synthesize(server.port, script["warmup"])  # loads a lazy voice

        def each(key: str, values: dict[str, list[float]]) -> None:
            for name in running:
                results[name][key] = distribution(values[name])
            log(f"  {key}: " + ", ".join(f"{n} p50 {results[n][key]['p50']:.0f} ms / p95 "
                                          f"{results[n][key]['p95']:.0f} ms" for n in running))

        ttfa: dict[str, list[float]] = {name: [] for name in running}
        for text in script["ttfa"]:
            for name, server in running.items():
                ttfa[name].append((await synthesize(server.port, text))[0] * 1000)
        each("ttfa", ttfa)

        for label, cases in script["stream"].items():
            values: dict[str, list[float]] = {name: [] for name in running}
            for pieces, completes in cases:
                for name, server in running.items():
                    values[name].append(await streamed(server.port, pieces, completes, streaming[name]) * 1000)
            each(f"stream {label}", values)

        for clients, rounds in script["clients"].items():
            for name, server in running.items():
                ok_all: list[float] = []
                errors: list[str] = []
                for texts in rounds:
                    ok, failed = await together(server.port, texts)
                    ok_all += [t * 1000 for t in ok]
                    errors += failed
                results[name].setdefault("clients", {})[clients] = {
                    **distribution(ok_all), "errors": len(errors), "error": errors[:1]}
                c = results[name]["clients"][clients]
                log(f"  {name} {clients} clients: p50 {c['p50']:.0f} ms, p95 {c['p95']:.0f} ms"
                    + (f", {len(errors)} failed: {errors[0]}" if errors else ""))

        rtf: dict[str, list[float]] = {name: [] for name in running}
        for paragraph in script["rtf"]:
            for name, server in running.items():
                _first, total, audio = await synthesize(server.port, paragraph)
                rtf[name].append(total / audio)
        for name in running:
            results[name]["rtf"] = summary(rtf[name])
            results[name]["peak_rss_mb"] = running[name].peak_mb
        log("  RTF: " + ", ".join(f"{n} {results[n]['rtf']['p50']:.3f}" for n in running))

        for name in sorted(running, key=lambda n: n != "ours"):  # ours first: the reference may be killed
            results[name]["memory"] = await memory_test(running[name], mem_timeout)
            m = results[name]["memory"]
            log(f"  {name} {m['chars']} chars: peak {m['peak_mb']:.0f} MB, {m['outcome']}")

    async def cache(running: dict[str, Server]) -> None:
        """Each sentence: a first request (fresh), then the same sentence `repeats` times."""
        first: dict[str, list[float]] = {name: [] for name in running}
        again: dict[str, list[float]] = {name: [] for name in running}
        for name, server in running.items():
            await synthesize(server.port, script["cache_warmup"])
        for text in script["cache"]:
            for name, server in running.items():
                first[name].append((await synthesize(server.port, text))[0] * 1000)
            for _ in range(script["cache_repeats"]):
                for name, server in running.items():
                    again[name].append((await synthesize(server.port, text))[0] * 1000)
        for name in running:
            results[name]["cache"] = {"first": distribution(first[name]), "repeat": distribution(again[name]),
                                      "repeats": script["cache_repeats"]}
            c = results[name]["cache"]
            log(f"  cache {name}: first p50 {c['first']['p50']:.0f} ms, "
                f"repeated p50 {c['repeat']['p50']:.0f} ms / p95 {c['repeat']['p95']:.0f} ms")

    await measure(servers, main, alone=alone, log_dir=log_dir, kill_above_mb=kill_above_mb)
    if cache_servers:
        log(f"== TTS audio cache ({'alone' if alone else 'side by side'}): {', '.join(cache_servers)}")
        await measure(cache_servers, cache, alone=alone, log_dir=log_dir, kill_above_mb=kill_above_mb)
    return results
