"""The bridge's core driven directly, with no MQTT: real Wyoming STT and TTS services, a sink
that collects the typed results, and the admission rules a front relies on."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

from helpers import JFK_TEXT, REPO, word_error_rate
from mqtt_helpers import jfk_pcm, run, stt_server, tts_server  # noqa: F401  (fixtures)

from broker.config import parse_config
from broker.core.core import Core
from broker.core.errors import SessionError
from broker.core.metrics import BrokerMetrics
from broker.core.payloads import Stop, SttRequest, Voice
from broker.core.results import Audio, AudioFormat, Done, Failure, Final, Partial, Result
from broker.core.services import ServicePool
from broker.core.settings import SettingsStore
from voice_common.errors import MqttCode

SENTENCE = "The weather today is sunny and warm."
#: Failure detection only: a session that has not ended by then hangs.
HANG_S = 240


class ListSink:
    """Collects every result, in order."""

    def __init__(self) -> None:
        self.results: list[Result] = []

    async def send(self, result: Result) -> None:
        self.results.append(result)


class BrokenSink(ListSink):
    """A requester that is gone: every send raises."""

    async def send(self, result: Result) -> None:
        self.results.append(result)
        raise ConnectionResetError("the requester went away")


async def make_core(stt_uri: str, tts_uri: str, db: Path, *args: str) -> Core:
    config = parse_config(["--stt", stt_uri, "--tts", tts_uri, "--db", str(db), *args])
    metrics = BrokerMetrics()
    pool = ServicePool(config.connect_timeout, metrics)
    for service in (pool.add(stt_uri, "static", expect="asr"), pool.add(tts_uri, "static", expect="tts")):
        await pool.check(service)
        assert service.healthy, service.summary()
    return Core(config, pool, SettingsStore(config.db), metrics)


async def close(core: Core) -> None:
    await core.close()
    await core.pool.close()
    core.store.close()


async def transcribe(core: Core, pcm: bytes, rate: int = 16000, partials: bool = False) -> list[Result]:
    sink = ListSink()
    session = core.open_stt(SttRequest(rate=rate, partials=partials), sink)
    step = rate * 2 // 25  # 40 ms of 16-bit mono
    for start in range(0, len(pcm), step):
        session.feed(pcm[start:start + step])
    session.stop(Stop.now())
    assert session.task is not None
    await asyncio.wait_for(session.task, HANG_S)
    return sink.results


async def speak(core: Core, text: str) -> list[Result]:
    sink = ListSink()
    session = core.open_tts(Voice(), sink, text=text)
    assert session.task is not None
    await asyncio.wait_for(session.task, HANG_S)
    return sink.results


def test_stt_of_jfk_ends_in_the_right_final(stt_server, tts_server, jfk_pcm, tmp_path):
    async def scenario():
        core = await make_core(stt_server.uri, tts_server.uri, tmp_path / "s.sqlite3")
        try:
            results = await transcribe(core, jfk_pcm, partials=True)
            assert core.sessions() == [] and core.slots.active == 0
            return results
        finally:
            await close(core)

    results = run(scenario())
    final = results[-1]
    assert isinstance(final, Final), results
    assert word_error_rate(JFK_TEXT, final.text) == 0, final
    assert final.audio_ms == round(len(jfk_pcm) / 32)  # 16 kHz 16-bit mono: 32 bytes a millisecond
    assert final.lost_chunks == 0
    partials = results[:-1]
    assert all(isinstance(p, Partial) for p in partials), results
    assert [p.seq for p in partials] == list(range(1, len(partials) + 1))


def test_tts_sends_format_then_audio_then_done_and_the_audio_says_the_text(stt_server, tts_server, tmp_path):
    async def scenario():
        core = await make_core(stt_server.uri, tts_server.uri, tmp_path / "s.sqlite3", "--audio-chunk-bytes", "2048")
        try:
            spoken = await speak(core, SENTENCE)
            fmt = spoken[0]
            assert isinstance(fmt, AudioFormat), spoken[:2]
            audio = b"".join(r.data for r in spoken if isinstance(r, Audio))
            heard = await transcribe(core, audio, rate=fmt.rate) if fmt.width == 2 and fmt.channels == 1 else []
            return spoken, heard
        finally:
            await close(core)

    spoken, heard = run(scenario())
    pieces, done = spoken[1:-1], spoken[-1]
    assert pieces and all(isinstance(r, Audio) for r in pieces), [type(r).__name__ for r in spoken]
    assert isinstance(done, Done), done
    assert done.chunks == len(pieces)
    assert done.bytes == sum(len(p.data) for p in pieces)  # type: ignore[union-attr]
    assert all(len(p.data) <= 2048 for p in pieces)  # type: ignore[union-attr]
    assert isinstance(heard[-1], Final), heard
    assert word_error_rate(SENTENCE, heard[-1].text) <= 0.25, heard[-1]


def test_refusals_raise_session_error_with_the_right_code(stt_server, tts_server, tmp_path):
    async def scenario():
        core = await make_core(stt_server.uri, tts_server.uri, tmp_path / "s.sqlite3", "--max-sessions", "2",
                               "--max-text-chars", "50")
        codes: dict[str, MqttCode | None] = {}

        def refused(name: str, open_session) -> None:
            try:
                open_session()
            except SessionError as err:
                codes[name] = err.code
            else:
                codes[name] = None  # opened: the assertion below fails

        try:
            core.store.update("porch", {"mode": "disabled"}, 10)
            core.store.update("hall", {"mode": "tts_only"}, 10)
            refused("disabled", lambda: core.open_stt(SttRequest(), ListSink(), site="porch", ident="a"))
            refused("tts_only", lambda: core.open_stt(SttRequest(), ListSink(), site="hall", ident="a"))
            refused("empty", lambda: core.open_tts(Voice(), ListSink(), text="  "))
            refused("long", lambda: core.open_tts(Voice(), ListSink(), text="x" * 51))
            first_sink = ListSink()
            first = core.open_stt(SttRequest(), first_sink, site="kitchen", ident="one")
            refused("site_busy", lambda: core.open_stt(SttRequest(), ListSink(), site="kitchen", ident="two"))
            assert core.busy("kitchen") and core.stt_at("kitchen") is first
            second_sink = ListSink()
            second = core.open_stt(SttRequest(), second_sink)  # no site: only a global slot
            refused("no_slot", lambda: core.open_tts(Voice(), ListSink(), text=SENTENCE))
            for session in (first, second):
                session.cancel()
                assert session.task is not None
                await asyncio.wait_for(session.task, HANG_S)
            freed = not core.busy("kitchen") and core.slots.active == 0
            return codes, first_sink.results, second_sink.results, freed
        finally:
            await close(core)

    codes, first, second, freed = run(scenario())
    assert codes == {
        "disabled": MqttCode.DISABLED, "tts_only": MqttCode.DISABLED, "empty": MqttCode.INVALID_REQUEST,
        "long": MqttCode.TOO_LARGE, "site_busy": MqttCode.BUSY, "no_slot": MqttCode.BUSY,
    }
    for results in (first, second):
        assert results == [Failure(MqttCode.CANCELLED, "cancelled by the requester")], results
    assert freed


def test_a_raising_sink_ends_the_session_and_frees_its_slot(stt_server, tts_server, tmp_path):
    async def scenario():
        core = await make_core(stt_server.uri, tts_server.uri, tmp_path / "s.sqlite3", "--max-sessions", "1")
        try:
            sink = BrokenSink()
            session = core.open_tts(Voice(), sink, text=SENTENCE, site="kitchen", ident="r1")
            assert session.task is not None
            await asyncio.wait_for(session.task, HANG_S)
            left = (core.sessions(), core.busy("kitchen"), core.slots.active)
            after = await speak(core, SENTENCE)  # the one slot is free again
            return sink.results, left, after
        finally:
            await close(core)

    broken, left, after = run(scenario())
    assert len(broken) == 1 and isinstance(broken[0], AudioFormat), broken  # nothing after the raise
    assert left == ([], False, 0)
    assert isinstance(after[-1], Done), after[-1]


def test_interrupt_reports_interrupted_through_the_sink(stt_server, tts_server, tmp_path):
    async def scenario():
        core = await make_core(stt_server.uri, tts_server.uri, tmp_path / "s.sqlite3")
        sink = ListSink()
        session = core.open_stt(SttRequest(), sink, site="kitchen", ident="s1")
        core.interrupt(session, "the front went away")
        free_at_once = not core.busy("kitchen") and core.slots.active == 0
        await close(core)  # waits for the Failure, which a task of its own sends
        return sink.results, free_at_once

    results, free_at_once = run(scenario())
    assert free_at_once
    assert results == [Failure(MqttCode.INTERRUPTED, "the front went away")]


def test_the_core_imports_no_mqtt():
    """The core never imports a front, aiomqtt or paho: by source and by what importing it loads."""
    core_dir = REPO / "broker" / "core"
    pattern = re.compile(r"^\s*(from|import)\s+(\.\.mqtt|broker\.mqtt|aiomqtt|paho)\b", re.M)
    offenders = [p.name for p in core_dir.glob("*.py") if pattern.search(p.read_text())]
    assert offenders == [], offenders
    code = ("import sys, broker.core.core, broker.core.discovery, broker.core.results; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiomqtt', 'paho') "
            "or m.startswith('broker.mqtt')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
