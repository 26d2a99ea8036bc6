"""GPU check of the qwen3 backend: first-audio latency, real-time factor, 1/4/10 sessions at once.

    python bench/gpu_check.py --model /models/Qwen3-TTS-12Hz-0.6B-Base [--device cuda]
        [--sessions 1,4,10] [--rounds 3] [--dtype auto] [--json out.json]

One command for a CUDA machine with real weights in a folder (nothing is downloaded):
starts `python -m wyoming_tts --backend qwen3` on a free loopback port (audio cache off,
one worker per session so the sessions really run at once), creates a voice profile from
tests/data/basic_ref_en.wav over the Wyoming `voice-create` event, warms up, then for each
session count sends that many `synthesize` requests at once, each a fresh sentence, for
`--rounds` rounds. TTFA = from writing `synthesize` to the first `audio-chunk`; RTF =
request time / seconds of audio (below 1 is faster than real time). Prints a markdown
table, and JSON with --json. With `--device cpu --model <tiny model dir>` it smoke-tests
itself on any machine (the tiny model of tests/qwen_tiny.py; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeVoice

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make the bench package importable

from bench.common import free_port, pct  # noqa: E402
from bench.sentences import Fresh  # noqa: E402

CLIP = REPO / "tests" / "data" / "basic_ref_en.wav"
CLIP_TEXT = "Some call me nature, others call me mother nature."
VOICE = "bench-nature"


async def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gpu_check: the server exited ({proc.returncode}); see its log above")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.5)
    raise SystemExit(f"gpu_check: the server did not listen within {timeout:.0f} s")


async def _create_voice(port: int) -> None:
    with wave.open(str(CLIP), "rb") as handle:
        rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
        pcm = handle.readframes(handle.getnframes())
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Event("voice-create", {
            "name": VOICE, "transcript": CLIP_TEXT, "language": "en_US",
            "rate": rate, "width": width, "channels": channels}))
        await client.write_event(AudioStart(rate, width, channels).event())
        for i in range(0, len(pcm), 16384):
            await client.write_event(AudioChunk(rate, width, channels, pcm[i:i + 16384]).event())
        await client.write_event(AudioStop().event())
        reply = await asyncio.wait_for(client.read_event(), 600)
        if reply is None or reply.type != "voice-created":
            raise SystemExit(f"gpu_check: voice-create failed: {reply.data if reply else 'connection closed'}")


async def _speak(port: int, text: str) -> dict:
    start = time.perf_counter()
    first = None
    samples = rate = 0
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=VOICE)).event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 600)
            if event is None or event.type == "error":
                raise SystemExit(f"gpu_check: request failed: {event.data if event else 'connection closed'}")
            if event.type == "audio-start":
                rate = event.data["rate"]
            elif event.type == "audio-chunk":
                first = first if first is not None else time.perf_counter() - start
                samples += len(event.payload or b"") // 2
            elif event.type == "audio-stop":
                break
    total = time.perf_counter() - start
    seconds = samples / rate if rate else 0.0
    return {"ttfa": first, "total": total, "audio": seconds, "rtf": total / seconds if seconds else float("nan")}


async def check(args: argparse.Namespace) -> list[dict]:
    sessions = [int(n) for n in args.sessions.split(",")]
    port = free_port()
    voices = tempfile.mkdtemp(prefix="gpu-check-voices-")
    proc = subprocess.Popen([
        sys.executable, "-m", "wyoming_tts", "--uri", f"tcp://127.0.0.1:{port}", "--backend", "qwen3",
        "--qwen-model", args.model, "--device", args.device, "--qwen-dtype", args.dtype, "--cache-mb", "0",
        "--voice-profiles-dir", voices, "--workers", str(max(sessions)), "--max-sessions", str(max(sessions)),
    ], cwd=REPO)
    fresh = Fresh()
    try:
        started = time.perf_counter()
        await _wait_port(port, proc, args.load_timeout)
        print(f"gpu_check: server ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        await _create_voice(port)
        await _speak(port, fresh.take()[0])  # warm-up: prompt encoded, kernels compiled
        rows = []
        for n in sessions:
            runs: list[dict] = []
            wall = 0.0
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                runs += await asyncio.gather(*(_speak(port, text) for text in fresh.take(n)))
                wall += time.perf_counter() - t0
            ttfa = [r["ttfa"] for r in runs]
            rtf = [r["rtf"] for r in runs]
            audio = sum(r["audio"] for r in runs)
            rows.append({"sessions": n, "requests": len(runs), "ttfa_p50_ms": 1000 * statistics.median(ttfa),
                         "ttfa_p90_ms": 1000 * pct(ttfa, 0.9), "rtf_p50": statistics.median(rtf),
                         "rtf_p90": pct(rtf, 0.9), "audio_s_per_wall_s": audio / wall})
        return rows
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Qwen3-TTS-12Hz Base folder (official layout)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--sessions", default="1,4,10", help="comma list of concurrent session counts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per session count")
    parser.add_argument("--load-timeout", type=float, default=600.0)
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"gpu_check: {args.model} is not a model folder (no config.json)")
    rows = asyncio.run(check(args))
    print(f"qwen3 on {args.device} ({args.dtype}), model {args.model}\n")
    print("| sessions | requests | TTFA p50 | TTFA p90 | RTF p50 | RTF p90 | audio s per wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['sessions']} | {r['requests']} | {r['ttfa_p50_ms']:.0f} ms | {r['ttfa_p90_ms']:.0f} ms | "
              f"{r['rtf_p50']:.2f} | {r['rtf_p90']:.2f} | {r['audio_s_per_wall_s']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
