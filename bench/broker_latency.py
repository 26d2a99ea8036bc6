"""Latency the MQTT bridge adds on loopback: (MQTT -> bridge -> Wyoming -> MQTT) minus direct Wyoming.

    .venv/bin/python bench/broker_latency.py [--runs 30] [--skip-http] [--quick]

Starts a private Mosquitto, `wyoming_stt`, `wyoming_tts` (audio cache off) and the bridge
(`python -m broker`) on free loopback ports, then alternates direct Wyoming requests and the
same requests over MQTT (v5, fixed result topics):
- STT: the JFK recording (11 s) in 40 ms chunks paced like a live microphone at `--pace`
  times real time (default 2, the fastest the STT service still treats as live audio); time
  from `audio-stop` (direct) or publishing `stop` (MQTT) to the final transcript.
- TTS: one sentence; time from `synthesize` / publishing `say` to the first audio chunk and
  to `audio-stop` / `result/done`.
With the HTTP front (`--api`, auth off; `--skip-http` leaves it out) the same requests also
go over the WebSockets (`/api/v1/listen`: stop -> final; `/api/v1/speak`: speak+stop ->
first audio frame and -> `complete`) and OpenAI's speech route (`POST /v1/audio/speech`,
pcm: -> first body bytes and -> end of the body), each paired with the same round's direct time.
Added latency = front time minus the direct time of the same round (paired); p50/p99 of
those differences are printed as a markdown table, with the absolute times for reference.
The STT decode time varies run to run (more so on a busy machine), so the table also splits
the STT path: the time inside the bridge (the `latency_ms` of `final`, from receiving `stop`
to the transcript) and the MQTT hops alone (publish `stop` -> bridge, bridge -> `final`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers import JFK_FLAC, ServerProcess, decode_audio, free_port  # noqa: E402
from mqtt_helpers import Bridge, Mosquitto, Probe  # noqa: E402

SENTENCE = "Please turn off the lights in the living room."
CHUNK = 16000 * 2 * 40 // 1000  # 40 ms of 16 kHz 16-bit mono


async def paced(pcm: bytes, pace: float):
    """(index, chunk) of `pcm`, each released at its time on a live microphone sped up by `pace`."""
    t0 = time.perf_counter()
    for n, i in enumerate(range(0, len(pcm), CHUNK)):
        delay = t0 + n * 0.040 / pace - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield n, pcm[i:i + CHUNK]


async def stt_direct(uri: str, pcm: bytes, pace: float) -> float:
    host, port = uri.removeprefix("tcp://").rsplit(":", 1)
    async with AsyncTcpClient(host, int(port)) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        async for _, chunk in paced(pcm, pace):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=chunk).event())
        await client.write_event(AudioStop().event())
        sent = time.perf_counter()
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("STT service closed the connection")
            if Transcript.is_type(event.type):
                return time.perf_counter() - sent


async def stt_mqtt(probe: Probe, pcm: bytes, pace: float, sid: str) -> tuple[float, float]:
    """(seconds from publishing `stop` to `final`, the bridge's own `latency_ms` in seconds)."""
    await probe.publish(f"voice/stt/bench/{sid}/start", {"rate": 16000, "width": 2, "channels": 1, "language": "en"})
    chunks = 0
    async for _, chunk in paced(pcm, pace):
        await probe.publish(f"voice/stt/bench/{sid}/audio", chunk, qos=0)
        chunks += 1
    await probe.publish(f"voice/stt/bench/{sid}/stop", {"chunks": chunks}, qos=0)
    sent = time.perf_counter()
    msg = await probe.next(f"voice/stt/bench/{sid}/result/*", 60)
    if not msg.topic.endswith("/final"):
        raise RuntimeError(f"STT over MQTT failed: {msg.payload!r}")
    return time.perf_counter() - sent, msg.json()["latency_ms"] / 1000


async def tts_direct(uri: str, text: str) -> tuple[float, float]:
    host, port = uri.removeprefix("tcp://").rsplit(":", 1)
    async with AsyncTcpClient(host, int(port)) as client:
        await client.write_event(Synthesize(text).event())
        sent = time.perf_counter()
        first = None
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("TTS service closed the connection")
            if first is None and AudioChunk.is_type(event.type):
                first = time.perf_counter() - sent
            elif AudioStop.is_type(event.type):
                return first or 0.0, time.perf_counter() - sent


async def tts_mqtt(probe: Probe, text: str, rid: str) -> tuple[float, float]:
    await probe.publish(f"voice/tts/bench/{rid}/say", text, qos=0)
    sent = time.perf_counter()
    first = None
    while True:
        msg = await probe.next(f"voice/tts/bench/{rid}/result/*", 60)
        kind = msg.topic.rsplit("/", 1)[1]
        if kind == "audio" and first is None:
            first = time.perf_counter() - sent
        elif kind == "done":
            return first or 0.0, time.perf_counter() - sent
        elif kind == "error":
            raise RuntimeError(f"TTS over MQTT failed: {msg.payload!r}")


async def stt_ws(api: str, pcm: bytes, pace: float) -> float:
    """Seconds from sending `stop` on /api/v1/listen to its `final`."""
    from websockets.asyncio.client import connect

    async with connect(api.replace("http", "ws", 1) + "/api/v1/listen") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "start", "sampleRate": 16000, "language": "en"}))
        await ws.recv()
        async for _, chunk in paced(pcm, pace):
            await ws.send(chunk)
        await ws.send(json.dumps({"type": "stop"}))
        sent = time.perf_counter()
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                kind = json.loads(message)["type"]
                if kind == "final":
                    return time.perf_counter() - sent
                if kind in ("error", "stopped"):
                    raise RuntimeError(f"STT over the WebSocket failed: {message}")


async def tts_ws(api: str, text: str) -> tuple[float, float]:
    """Seconds from `speak` + `stop` on /api/v1/speak to the first audio frame and to `complete`."""
    from websockets.asyncio.client import connect

    async with connect(api.replace("http", "ws", 1) + "/api/v1/speak") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "start", "sampleRate": 22050}))
        await ws.recv()
        await ws.send(json.dumps({"type": "speak", "text": text}))
        await ws.send(json.dumps({"type": "stop"}))
        sent = time.perf_counter()
        first = None
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                first = first or time.perf_counter() - sent
            elif json.loads(message)["type"] == "complete":
                return first or 0.0, time.perf_counter() - sent
            elif json.loads(message)["type"] == "error":
                raise RuntimeError(f"TTS over the WebSocket failed: {message}")


async def tts_http(client: httpx.AsyncClient, text: str) -> tuple[float, float]:
    """Seconds from POST /v1/audio/speech (pcm) to the first body bytes and to its end."""
    sent = time.perf_counter()
    first = None
    async with client.stream("POST", "/v1/audio/speech", json={"model": "tts-1", "input": text,
                                                               "response_format": "pcm"}) as response:
        response.raise_for_status()
        async for data in response.aiter_bytes():
            if data and first is None:
                first = time.perf_counter() - sent
    return first or 0.0, time.perf_counter() - sent


MQTT_ROWS = ("stt", "stt_bridge", "stt_hops", "tts_first", "tts_done")
HTTP_ROWS = ("stt_ws", "tts_ws_first", "tts_ws_done", "tts_http_first", "tts_http_done")


async def measure(runs: int, pace: float, stt_uri: str, tts_uri: str, mosquitto: Mosquitto, pcm: bytes,
                  api: str | None) -> dict[str, list]:
    rows: dict[str, list] = {k: [] for k in MQTT_ROWS + (HTTP_ROWS if api else ())}
    async with Probe(mosquitto, "voice/stt/bench/+/result/#", "voice/tts/bench/+/result/#") as probe, \
            httpx.AsyncClient(base_url=api or "http://unused", timeout=60) as http:
        await stt_direct(stt_uri, pcm, pace)  # warm-up of every path
        await stt_mqtt(probe, pcm, pace, "warm")
        await tts_direct(tts_uri, SENTENCE)
        await tts_mqtt(probe, SENTENCE, "warm")
        if api:
            await stt_ws(api, pcm, pace)
            await tts_ws(api, SENTENCE)
            await tts_http(http, SENTENCE)
        for i in range(runs):
            direct = await stt_direct(stt_uri, pcm, pace)
            total, inside = await stt_mqtt(probe, pcm, pace, f"s{i}")
            rows["stt"].append((direct, total))
            rows["stt_bridge"].append((direct, inside))
            rows["stt_hops"].append((inside, total))
            if api:
                rows["stt_ws"].append((direct, await stt_ws(api, pcm, pace)))
            d_first, d_done = await tts_direct(tts_uri, SENTENCE)
            m_first, m_done = await tts_mqtt(probe, SENTENCE, f"t{i}")
            rows["tts_first"].append((d_first, m_first))
            rows["tts_done"].append((d_done, m_done))
            if api:
                w_first, w_done = await tts_ws(api, SENTENCE)
                h_first, h_done = await tts_http(http, SENTENCE)
                rows["tts_ws_first"].append((d_first, w_first))
                rows["tts_ws_done"].append((d_done, w_done))
                rows["tts_http_first"].append((d_first, h_first))
                rows["tts_http_done"].append((d_done, h_done))
    return rows


def report(rows: dict[str, list], runs: int, pace: float) -> str:
    names = {"stt": f"STT final after stop (jfk 11 s at {pace:g}x)",
             "stt_bridge": "STT stop -> final inside the bridge (its latency_ms)",
             "stt_hops": "STT MQTT hops only (via MQTT minus the bridge's latency_ms)", "tts_first": "TTS say -> first audio",
             "tts_done": "TTS say -> done",
             "stt_ws": f"STT WebSocket listen: stop -> final (jfk at {pace:g}x)",
             "tts_ws_first": "TTS WebSocket speak -> first audio", "tts_ws_done": "TTS WebSocket speak -> complete",
             "tts_http_first": "TTS POST /v1/audio/speech (pcm) -> first bytes",
             "tts_http_done": "TTS POST /v1/audio/speech (pcm) -> end of body"}
    lines = [f"Bridge added latency on loopback, {runs} paired runs (ms)", "",
             "| measure | direct p50 | via bridge p50 | added p50 | added p99 |", "|---|---|---|---|---|"]
    for key, pairs in rows.items():
        direct, mqtt = (np.array(v) * 1000 for v in zip(*pairs))
        added = mqtt - direct
        lines.append(f"| {names[key]} | {np.percentile(direct, 50):.1f} | {np.percentile(mqtt, 50):.1f} | "
                     f"{np.percentile(added, 50):.1f} | {np.percentile(added, 99):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="paired runs per measure (default 30)")
    parser.add_argument("--pace", type=float, default=2.0, help="STT audio speed vs. real time (default 2)")
    parser.add_argument("--skip-http", action="store_true", help="leave out the HTTP/WebSocket front's rows")
    parser.add_argument("--quick", action="store_true", help="3 runs (a smoke test of the script)")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    pcm = decode_audio(JFK_FLAC)
    mosquitto = Mosquitto()
    stt = tts = bridge = None
    try:
        stt = ServerProcess("wyoming_stt").wait_ready()
        tts = ServerProcess("wyoming_tts", "--cache-mb", "0").wait_ready()
        api = None if args.skip_http else f"http://127.0.0.1:{free_port()}"
        http_args = [] if api is None else ["--api", api.removeprefix("http://"), "--api-auth", "off"]
        bridge = Bridge(mosquitto, "--stt", stt.uri, "--tts", tts.uri, "--log-level", "WARNING", *http_args).start()
        rows = asyncio.run(measure(runs, args.pace, stt.uri, tts.uri, mosquitto, pcm, api))
        print(report(rows, runs, args.pace))
    finally:
        for proc in (bridge, tts, stt):
            if proc is not None:
                proc.stop() if isinstance(proc, Bridge) else proc.terminate()
        mosquitto.close()


if __name__ == "__main__":
    main()
