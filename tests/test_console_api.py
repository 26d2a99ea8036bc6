"""The console's own endpoints on a real uvicorn server over a real core with real Wyoming STT and
TTS services, called with httpx and a real API key: `GET /api/v1/status` reports what the core
and its metrics say, `PUT /api/v1/sites/{site}` checks and stores like MQTT settings/set, errors
land in the bounded ring without any content, and the page's files ship in the package."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from pathlib import Path

import httpx
from helpers import REPO
from mqtt_helpers import mosquitto, run, stt_server, tts_server  # noqa: F401  (fixtures)

from broker.config import parse_config
from broker.core.core import Core
from broker.core.keys import KeyStore
from broker.core.metrics import BrokerMetrics
from broker.core.payloads import Voice
from broker.core.recent_errors import MAX_MESSAGE_CHARS, RecentErrors
from broker.core.results import Done, Result
from broker.core.services import ServicePool
from broker.core.settings import SettingsStore
from broker.http.console import PAGE_FILES, STATIC_DIR, console_router
from broker.http.server import start_api
from broker.http.status import histogram_quantile

SENTENCE = "The console shows what the bridge did."
#: Failure detection only.
PATIENCE = 120


class ListSink:
    def __init__(self) -> None:
        self.results: list[Result] = []

    async def send(self, result: Result) -> None:
        self.results.append(result)


class ConsoleApi:
    """A core over the real services and the HTTP front with the console's routes, keys on."""

    def __init__(self, stt_uri: str, tts_uri: str, folder: Path) -> None:
        db = str(folder / "bridge.sqlite3")
        self.config = parse_config(["--stt", stt_uri, "--tts", tts_uri, "--db", db, "--api", "127.0.0.1:0",
                                    "--no-mqtt", "--sites", "kitchen"])
        self.keys = KeyStore(db)
        self.token = self.keys.create("console-test")
        self.stt_uri, self.tts_uri = stt_uri, tts_uri

    async def __aenter__(self) -> ConsoleApi:
        metrics = BrokerMetrics()
        pool = ServicePool(self.config.connect_timeout, metrics)
        for service in (pool.add(self.stt_uri, "static", expect="asr"), pool.add(self.tts_uri, "static", expect="tts")):
            await pool.check(service)
        self.core = Core(self.config, pool, SettingsStore(self.config.db), metrics)
        metrics.ready.set(1)
        self.server = await start_api(self.config, registry=metrics.registry, is_ready=lambda: True,
                                      list_models=lambda: [], check_key=self.keys.check,
                                      routers=[console_router()], state={"core": self.core})
        self.client = httpx.AsyncClient(base_url=self.server.url, timeout=PATIENCE,
                                        headers={"Authorization": f"Bearer {self.token}"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.server.stop()
        await self.core.close()
        await self.core.pool.close()
        self.core.store.close()


def test_status_reports_the_services_and_counts_a_real_request(stt_server, tts_server, tmp_path):
    async def scenario():
        async with ConsoleApi(stt_server.uri, tts_server.uri, tmp_path) as api:
            before = (await api.client.get("/api/v1/status")).json()
            sink = ListSink()
            session = api.core.open_tts(Voice(), sink, text=SENTENCE)
            assert session.task is not None
            await asyncio.wait_for(session.task, PATIENCE)
            after = (await api.client.get("/api/v1/status")).json()
            anonymous = await httpx.AsyncClient(base_url=api.server.url).get("/api/v1/status")
            return before, after, sink.results, anonymous

    before, after, results, anonymous = run(scenario())
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    assert isinstance(results[-1], Done), results[-1]
    services = {s["uri"]: s for s in before["services"]}
    assert services[stt_server.uri]["healthy"] and services[stt_server.uri]["kinds"] == ["asr"]
    assert services[stt_server.uri]["models"], services
    assert services[tts_server.uri]["healthy"] and services[tts_server.uri]["voices"], services
    assert before["ready"] is True and before["mqtt"] == {"enabled": False, "connected": False}
    assert before["sessions"] == {"active": 0, "max": api_max_sessions(), "stt": 0, "tts": 0}
    # The one TTS request, as the bridge's own metrics count it.
    assert after["requests"]["tts"] == before["requests"]["tts"] + 1
    assert after["latency"]["tts"]["count"] == before["latency"]["tts"]["count"] + 1
    assert after["latency"]["tts"]["sum_s"] > before["latency"]["tts"]["sum_s"]
    assert after["latency"]["tts"]["p50_s"] is not None and before["latency"]["tts"]["p50_s"] is None
    assert after["audio_seconds"]["tts"] > 0
    assert after["http_requests"] >= before["http_requests"] + 1


def api_max_sessions() -> int:
    return parse_config(["--no-mqtt", "--api", "127.0.0.1:0"]).max_sessions


def test_site_settings_are_checked_stored_and_refusals_kept_without_content(stt_server, tts_server, tmp_path):
    async def scenario():
        async with ConsoleApi(stt_server.uri, tts_server.uri, tmp_path) as api:
            client = api.client
            answers = {
                "listed": await client.get("/api/v1/sites"),
                "set": await client.put("/api/v1/sites/kitchen", json={"mode": "conversation", "speed": 1.25}),
                "new": await client.put("/api/v1/sites/garage", json={"mode": "tts_only"}),
                "bad_mode": await client.put("/api/v1/sites/kitchen", json={"mode": "loud"}),
                "unknown": await client.put("/api/v1/sites/kitchen", json={"volume": 11}),
                "bad_speed": await client.put("/api/v1/sites/kitchen", json={"speed": 99}),
                "not_json": await client.put("/api/v1/sites/kitchen", content=b"mode=conversation"),
                "bad_site": await client.put("/api/v1/sites/a%20b", json={"mode": "disabled"}),
                "too_big": await client.put("/api/v1/sites/kitchen",
                                            json={"voice": "x" * api.config.max_control_bytes}),
                "unkeyed": await httpx.AsyncClient(base_url=api.server.url).put(
                    "/api/v1/sites/kitchen", json={"mode": "disabled"}),
            }
            stored = {site: api.core.store.get(site) for site in ("kitchen", "garage")}
            answers["after"] = await client.get("/api/v1/sites")
            status = (await client.get("/api/v1/status")).json()
            return answers, stored, status

    answers, stored, status = run(scenario())
    listed = answers["listed"].json()
    assert [s["site"] for s in listed["sites"]] == ["kitchen"]
    assert "conversation" in listed["modes"] and listed["sites"][0]["settings"]["mode"] == listed["default_mode"]
    assert answers["set"].status_code == 200, answers["set"].text
    assert answers["set"].json()["settings"] == {"mode": "conversation", "voice": None, "speaker": None,
                                                      "speed": 1.25, "language": None}
    assert answers["new"].status_code == 200 and stored["garage"].mode == "tts_only"
    assert stored["kitchen"].mode == "conversation" and stored["kitchen"].speed == 1.25  # refusals changed nothing
    for name in ("bad_mode", "unknown", "bad_speed", "not_json", "bad_site"):
        assert answers[name].status_code == 400, (name, answers[name].text)
        assert answers[name].json()["error"]["code"] == "invalid_request", (name, answers[name].text)
    assert answers["too_big"].status_code == 413 and answers["too_big"].json()["error"]["code"] == "too_large"
    assert answers["unkeyed"].status_code == 401
    assert [s["site"] for s in answers["after"].json()["sites"]] == ["garage", "kitchen"]
    recent = status["errors"]["recent"]
    assert [e["code"] for e in recent] == ["too_large"] + ["invalid_request"] * 5, recent
    assert status["errors"]["by_code"]["invalid_request"] >= 5
    assert all(e["backend"] == "settings" for e in recent)
    assert {e["site"] for e in recent} == {"kitchen", None}  # the refused name is not kept
    assert not any("x" * 50 in e["message"] or "loud" in e["message"] for e in recent), recent


def test_recent_errors_are_bounded_newest_first_and_short():
    ring = RecentErrors(size=3)
    for n in range(5):
        ring.add("busy", f"refusal {n}" + "!" * 1000, backend="stt", site="kitchen")
    assert ring.total == 5
    assert [e.message[:9] for e in ring.list()] == ["refusal 4", "refusal 3", "refusal 2"]
    assert all(len(e.message) == MAX_MESSAGE_CHARS for e in ring.list())
    assert [e.message[:9] for e in ring.list(limit=1)] == ["refusal 4"]


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 2.0), (0.5, 6.0), (1.0, 8.0), (math.inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == 0.1 + 0.4 * (5 - 2) / 4
    assert histogram_quantile(0.1, buckets) == 0.1 * 1 / 2
    assert histogram_quantile(0.95, buckets) == 1.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_the_page_files_ship_in_the_package(tmp_path):
    """What setuptools puts in the wheel (build_py is the step bdist_wheel copies from)."""
    build = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                            "-d", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    shipped = {p.name for p in (tmp_path / "broker" / "http" / "static").iterdir()}
    assert set(PAGE_FILES) <= shipped, shipped
    assert set(PAGE_FILES) == {p.name for p in STATIC_DIR.iterdir()}  # every file is served, none is stray
    page = (STATIC_DIR / "index.html").read_text()
    for name in ("console.js", "console.css", "favicon.svg"):
        assert f"/console/{name}" in page
    assert "/console/pcm-capture.js" in (STATIC_DIR / "console.js").read_text()


def test_a_site_set_over_http_is_published_retained_over_mqtt(mosquitto, stt_server, tts_server):  # noqa: F811
    """With both fronts: `PUT /api/v1/sites/{site}` goes out as MQTT `settings/set` would, the
    retained settings a device reads on subscribing, and the site is announced."""
    from helpers import free_port
    from http_helpers import keys_cli
    from mqtt_helpers import Bridge, Probe

    port = free_port()
    bridge = Bridge(mosquitto, "--stt", stt_server.uri, "--tts", tts_server.uri, "--api", f"127.0.0.1:{port}")
    token = keys_cli(bridge.db, "create", "console")
    bridge.start()

    async def scenario():
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=PATIENCE,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            answer = await client.put("/api/v1/sites/porch", json={"mode": "conversation", "language": "en"})
            assert answer.status_code == 200, answer.text
            refused = await client.put("/api/v1/sites/porch", json={"mode": "shout"})
        async with Probe(mosquitto, "voice/site/porch/settings", "voice/site/porch/busy") as probe:
            settings = await probe.next("voice/site/porch/settings", timeout=PATIENCE)
            busy = await probe.next("voice/site/porch/busy", timeout=PATIENCE)
        return answer.json(), refused, settings, busy

    try:
        entry, refused, settings, busy = run(scenario())
    finally:
        assert bridge.stop() == 0, bridge.log()
    assert settings.retain and settings.json() == entry["settings"]
    assert settings.json()["mode"] == "conversation" and settings.json()["language"] == "en"
    assert busy.retain and busy.payload == b"OFF"  # a site with settings is announced, retained
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
    assert "Traceback" not in bridge.log() and token not in bridge.log()
