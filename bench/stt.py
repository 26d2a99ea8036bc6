"""STT benchmark: one server (ours or the reference) against the same clips.

A request is what Home Assistant sends: transcribe(language=en), audio-start, 1024-sample
audio-chunks of 16 kHz 16-bit mono, audio-stop; latency is from writing audio-stop to
receiving `transcript`. `realtime` paces the chunks at the speed of speech (chunk i is
written when its audio would have been captured) and appends 0.7 s of trailing silence,
like Home Assistant's VAD; `burst` writes them as fast as the socket takes them. The hard cases (`hard_sets`) play long
speech, room noise instead of digital zeros after the speech, and quiet endings. The time
from the end of speech to the transcript is the stop latency plus the trailing 0.7 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error

from .common import HOST, Server, measure, summary
from .speech import RATE, Clip, room_noise, silence

CHUNK = 1024  # samples per audio-chunk (Home Assistant's size)
TRAILING_SILENCE = 0.7
TIMEOUT = 120.0


class RequestError(RuntimeError):
    pass


_REQUESTS = itertools.count()


def unique(pcm: bytes) -> bytes:
    """`pcm` with +-1 LSB of random dither, different for every request: inaudible, but no
    two requests of a run carry the same bytes, so a server that reuses work for identical
    input (ours keeps decoded windows) is measured on fresh audio, as users send it."""
    rng = np.random.default_rng(next(_REQUESTS))
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    samples += rng.integers(-1, 2, size=samples.size)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


async def transcribe(port: int, pcm: bytes, *, realtime: bool) -> tuple[float, str]:
    """One request (of fresh audio: see `unique`); returns (seconds from audio-stop to
    transcript, text)."""
    pcm = unique(pcm)
    client = AsyncTcpClient(HOST, port)
    await asyncio.wait_for(client.connect(), 10)
    try:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        step = CHUNK * 2
        start = time.perf_counter()
        for i, offset in enumerate(range(0, len(pcm), step)):
            if realtime:
                due = start + (i + 1) * CHUNK / RATE
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await client.write_event(
                AudioChunk(rate=RATE, width=2, channels=1, audio=pcm[offset:offset + step]).event())
        stop_at = time.perf_counter()
        await client.write_event(AudioStop().event())

        async def _read() -> str:
            while True:
                event = await client.read_event()
                if event is None:
                    raise RequestError("connection closed before transcript")
                if Transcript.is_type(event.type):
                    return Transcript.from_event(event).text
                if Error.is_type(event.type):
                    err = Error.from_event(event)
                    raise RequestError(f"server error {err.code}: {err.text}")

        text = await asyncio.wait_for(_read(), TIMEOUT)
        return time.perf_counter() - stop_at, text
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    from helpers import normalize_words, word_error_rate

    words = sum(len(normalize_words(ref)) for ref, _ in pairs)
    errors = sum(word_error_rate(ref, hyp) * len(normalize_words(ref)) for ref, hyp in pairs)
    return errors / max(1, words)


async def throughput(port: int, clip: Clip, clients: int, per_client: int) -> dict:
    """`clients` connections at once, each sending the clip in bursts `per_client` times."""
    latencies: list[float] = []

    async def worker() -> None:
        for _ in range(per_client):
            lat, _text = await transcribe(port, clip.pcm, realtime=False)
            latencies.append(lat * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - start
    return {"clients": clients, "requests": clients * per_client, "wall_s": wall,
            "req_per_s": clients * per_client / wall, **summary(latencies)}


#: Clients at once, each sending one ~3 s command (issue 12: "50 clients ... all get
#: correct transcripts").
MANY = (1, 4, 8, 16, 50)


async def many_clients(port: int, clips: list[Clip], clients: int) -> dict:
    """`clients` connections at once, client i sending clips[i % n] in a burst: every
    outcome counts (a 'busy' or any error is a failed request, not a skipped one)."""
    async def one(i: int) -> tuple[float, str, str]:
        clip = clips[i % len(clips)]
        try:
            seconds, text = await transcribe(port, clip.pcm, realtime=False)
            return seconds * 1000, clip.text, text
        except (RequestError, OSError, asyncio.TimeoutError) as err:
            return float("nan"), clip.text, f"<{err}>"

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(clients)))
    wall = time.perf_counter() - start
    ok = [(lat, ref, hyp) for lat, ref, hyp in outcomes if lat == lat]
    errors = [hyp for lat, _ref, hyp in outcomes if lat != lat]
    return {"clients": clients, "ok": len(ok), "failed": len(errors), "error": errors[:1],
            "wall_s": wall, "req_per_s": len(ok) / wall, "wer": corpus_wer([(r, h) for _l, r, h in ok]),
            **summary([lat for lat, _r, _h in ok])}


async def cold_start(name: str, argv: list[str], clip: Clip, log_dir: Path) -> dict:
    """Process start -> describe answered; then the first request and two more (burst)."""
    with Server(name, argv, log_dir=log_dir) as server:
        ready = await server.wait_ready()
        first, _ = await transcribe(server.port, clip.pcm, realtime=False)
        answered = time.perf_counter() - server.started_at
        later = [(await transcribe(server.port, clip.pcm, realtime=False))[0] for _ in range(2)]
    return {"ready_s": ready, "first_answer_s": answered, "first_ms": first * 1000,
            "later_ms": sorted(later)[len(later) // 2] * 1000}


def hard_sets(cmds: dict[str, list[Clip]], long: list[Clip], quiet: list[Clip]) -> list[tuple]:
    """(key, clips, tail) of the hard cases, each played in real time and followed by `tail`:
    long speech, commands followed by room noise instead of digital zeros, quiet endings."""
    return [("rt_long", long, "noise"), ("rt_noise_3s", cmds["3s"], "noise"),
            ("rt_noise_5s", cmds["5s"], "noise"), ("rt_quiet", quiet, "zeros")]


def _tail(kind: str) -> bytes:
    return room_noise(TRAILING_SILENCE) if kind == "noise" else silence(TRAILING_SILENCE)


async def run_servers(servers: dict[str, list[str]], *, cmds: dict[str, list[Clip]], jfk: Clip,
                      quick: bool, throughput_for: set[str], log_dir: Path, log,
                      hard: list[tuple] = (), only: set[str] | None = None, alone: bool = False) -> dict:
    """Cold starts one server at a time; then the measurements, side by side (all servers up
    at once and every request interleaved, clip by clip, server by server, so that load from
    elsewhere on the machine falls on all of them alike; an idle server costs the others
    nothing) or `alone` (one server process at a time, the others not running)."""
    results: dict = {name: {"name": name, "argv": argv} for name, argv in servers.items()}
    for name, argv in servers.items():
        if only is not None:
            break  # a partial run (--stt-sets): no cold starts
        colds = [await cold_start(f"{name}-cold", argv, jfk, log_dir) for _ in range(1 if quick else 3)]
        results[name]["cold"] = {k: sorted(c[k] for c in colds)[len(colds) // 2] for k in colds[0]}
        log(f"  {name} cold start: " + ", ".join(f"{k} {v:.2f}" for k, v in results[name]["cold"].items()))

    reps = 1 if quick else 2
    sets = [(f"rt_{cls}", clips, True, reps, "zeros") for cls, clips in cmds.items()]
    sets.append(("rt_11s", [jfk], True, reps, "zeros"))
    sets += [(key, clips, True, reps, tail) for key, clips, tail in hard]
    sets += [(f"burst_{cls}", clips, False, 1, None) for cls, clips in cmds.items()]
    sets.append(("burst_11s", [jfk], False, 2, None))
    if only is not None:
        sets = [entry for entry in sets if entry[0] in only]

    async def body(running: dict[str, Server]) -> None:
        if alone:
            log(f"  -- {', '.join(running)} alone")
        for server in running.values():
            await transcribe(server.port, jfk.pcm, realtime=False)  # warm-up
        for key, clips, realtime, n, tail in sets:
            log(f"  {key}")
            lat: dict[str, list[float]] = {name: [] for name in running}
            pairs: dict[str, list[tuple[str, str]]] = {name: [] for name in running}
            for rep in range(n):
                for clip in clips:
                    pcm = clip.pcm + _tail(tail) if realtime else clip.pcm
                    for name, server in running.items():
                        seconds, text = await transcribe(server.port, pcm, realtime=realtime)
                        lat[name].append(seconds * 1000)
                        pairs[name].append((clip.text, text))
                        if rep == 0 and realtime:
                            log(f"    {clip.name:12s} {name:7s} {seconds * 1000:6.0f} ms  {text.strip()!r}")
            for name in running:
                results[name][key] = {**summary(lat[name]), "wer": corpus_wer(pairs[name]), "values_ms": lat[name]}
            log("    p50: " + ", ".join(f"{name} {results[name][key]['p50']:.0f} ms" for name in running))
        for clients in (1, 2, 4, 8) if only is None else ():
            for name, server in running.items():
                if name not in throughput_for:
                    continue
                tp = await throughput(server.port, jfk, clients, 2 if quick else 3)
                results[name].setdefault("throughput", {})[clients] = tp
                log(f"  {name} {clients} clients: {tp['req_per_s']:.2f} req/s, p50 {tp['p50']:.0f} ms")
        for clients in MANY if only is None or "many" in only else ():
            for name, server in running.items():
                if name not in throughput_for:
                    continue
                out = await many_clients(server.port, cmds["3s"], clients)
                results[name].setdefault("many", {})[clients] = out
                log(f"  {name} {clients} clients x one 3 s command: {out['ok']} ok, {out['failed']} failed, "
                    f"p50 {out['p50']:.0f} ms, p95 {out['p95']:.0f} ms, {out['req_per_s']:.2f} req/s"
                    + (f" ({out['error'][0]})" if out["error"] else ""))
        for name, server in running.items():
            results[name]["peak_rss_mb"] = server.peak_mb

    await measure(servers, body, alone=alone, log_dir=log_dir)
    return results
