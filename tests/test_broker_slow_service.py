"""Slow and hung STT services: the wait after `stop` grows with the audio, a hang ends in `timeout`.

A long utterance takes long to decode on a CPU; the bridge must wait for it instead of
calling a healthy service dead. These tests run their own bridges (own topic prefixes)
with a small `--backend-timeout`, so only the part that grows with the audio's length
can keep a long transcription alive.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

from helpers import JFK_TEXT, ServerProcess, normalize_words, silence, word_error_rate
from mqtt_helpers import Bridge, Probe, jfk_pcm, mosquitto, send_audio, stt_server  # noqa: F401  (fixtures)


def run_long(coro, seconds: float = 400):
    """Run one async test body that includes a long decode (generous: CPUs may be loaded)."""
    return asyncio.run(asyncio.wait_for(coro, seconds))


def test_long_utterance_is_waited_for_and_service_stays_healthy(mosquitto, stt_server, jfk_pcm, tmp_path):
    # 4 x JFK with 1 s pauses: 47 s, close to the 60 s cap of bridge and service.
    long_pcm = (jfk_pcm + silence(1.0)) * 3 + jfk_pcm
    # Base 3 s, much less than the decode takes; 4 s per audio second (the environment twin)
    # leaves room for a loaded CPU.
    bridge = Bridge(mosquitto, "--stt", stt_server.uri, "--prefix", "long", "--backend-timeout", "3",
                    env={"BROKER_STT_TIMEOUT_FACTOR": "4"}, db=tmp_path / "s.sqlite3").start()

    async def scenario():
        async with Probe(mosquitto, "long/stt/den/+/result/#") as probe:
            await send_audio(probe, "den", "long1", long_pcm, chunk_ms=100, prefix="long")
            stopped = time.monotonic()
            long_result = await probe.next("long/stt/den/long1/result/*", 350)
            waited = time.monotonic() - stopped
            await send_audio(probe, "den", "short1", jfk_pcm, prefix="long")
            short_result = await probe.next("long/stt/den/short1/result/*", 60)
            return long_result, waited, short_result

    try:
        long_result, waited, short_result = run_long(scenario())
    finally:
        assert bridge.stop() == 0
    log = bridge.log()
    assert long_result.topic.endswith("/result/final"), (long_result.payload, log)
    final = long_result.json()
    print(f"47 s utterance: final after {waited:.1f} s (latency_ms {final['latency_ms']})")
    assert final["audio_ms"] == 47000
    # A transcript of the utterance; how well a 47 s stream is decoded is the STT service's
    # business (tests/test_stt_*), what the bridge owes is to wait for it.
    assert "fellow americans" in " ".join(normalize_words(final["text"])), final["text"]
    # Still healthy: never marked failed, and the next request is served.
    assert "failed:" not in log and "is down" not in log, log
    assert short_result.topic.endswith("/result/final"), short_result.payload
    assert word_error_rate(JFK_TEXT, short_result.json()["text"]) == 0
    assert "Traceback" not in log, log


def test_hung_service_ends_in_timeout(mosquitto, jfk_pcm, tmp_path):
    """A service that accepts the audio but never answers: `timeout` after base + factor x audio."""
    server = ServerProcess("wyoming_stt").wait_ready()
    bridge = Bridge(mosquitto, "--stt", server.uri, "--prefix", "hung", "--backend-timeout", "2",
                    env={"BROKER_STT_TIMEOUT_FACTOR": "1"}, db=tmp_path / "s.sqlite3").start()

    async def wait_healthy(probe: Probe) -> None:
        while True:
            info = json.loads((await probe.next("hung/info", 60)).payload)
            if [s["healthy"] for s in info["services"]] == [True]:
                return

    async def scenario():
        async with Probe(mosquitto, "hung/info", "hung/stt/den/+/result/#") as probe:
            await wait_healthy(probe)
            os.kill(server.proc.pid, signal.SIGSTOP)  # hung: the kernel still accepts the connection
            try:
                chunks = await send_audio(probe, "den", "h1", jfk_pcm[: 16000 * 2], prefix="hung", stop=False)
                stopped = time.monotonic()  # before `stop` is sent: the bridge's wait starts after
                await probe.publish("hung/stt/den/h1/stop", {"chunks": chunks, "bytes": 16000 * 2})
                error = await probe.next("hung/stt/den/h1/result/*", 60)
                waited = time.monotonic() - stopped
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            await send_audio(probe, "den", "h2", jfk_pcm, prefix="hung")
            after = await probe.next("hung/stt/den/h2/result/*", 60)
            return error, waited, after  # served again once it runs (re-checked, never written off)

    try:
        error, waited, after = run_long(scenario(), 200)
    finally:
        assert bridge.stop() == 0
        server.terminate()
    assert error.topic.endswith("/result/error"), error.payload
    assert error.json()["code"] == "timeout", error.payload
    assert "3.0 s after stop" in error.json()["message"], error.payload  # 2 s + 1 x 1 s of audio
    assert waited >= 2.99, waited  # a lower bound only: never sooner than the computed wait
    assert after.topic.endswith("/result/final"), after.payload
    assert word_error_rate(JFK_TEXT, after.json()["text"]) == 0
    assert "Traceback" not in bridge.log(), bridge.log()
