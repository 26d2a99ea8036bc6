"""The HTTP front's foundations on a real uvicorn server on a free loopback port, called by real
clients (httpx, the official `openai` package, `websockets`): health, metrics, the model list,
API keys, errors in OpenAI's shape, body limits, CORS, TLS, and a stop that ends open streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
import websockets
from fastapi import APIRouter, Form, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry, Gauge

from broker.config import ApiConfig, parse_config
from broker.http.app import ModelInfo, create_app
from broker.http.audio_codec import AudioCodecError, decode_audio
from broker.http.auth import ApiKey
from broker.http.errors import ApiError
from broker.http.server import ApiServer, start_api
from helpers import JFK_FLAC
from voice_common.config import ConfigError

KEYS = {"wvb_alice_token": "alice", "wvb_bob_token": "bob"}
MODELS = [ModelInfo("whisper-tiny.en"), ModelInfo("piper:en_US-joe-medium", owned_by="piper")]
#: Failure detection only: no assertion depends on how long anything takes.
PATIENCE = 30


class Api:
    """An app from create_app (plus any test routes) served by ApiServer in this event loop."""

    def __init__(self, *, ready: bool = True, **options: Any) -> None:
        self.ready = ready
        self.registry = CollectorRegistry()
        self.gauge = Gauge("test_widgets", "A metric of the bridge's registry", registry=self.registry)
        self.config = ApiConfig(api="127.0.0.1:0", **options)
        self.app = create_app(self.config, registry=self.registry, is_ready=lambda: self.ready,
                              list_models=lambda: MODELS, check_key=KEYS.get)
        self.server = ApiServer(self.app, self.config)

    async def __aenter__(self) -> Api:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def openai(self, key: str = "wvb_alice_token") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=PATIENCE)


def run(make: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(make(), PATIENCE * 2))


def test_healthz_follows_readiness_and_metrics_serve_the_bridge_registry():
    async def scenario():
        async with Api(ready=False) as api, httpx.AsyncClient(base_url=api.url) as client:
            loading = await client.get("/healthz")
            api.ready = True
            ready = await client.get("/healthz")
            api.gauge.set(7)
            await client.get("/v1/models")  # a 401, counted by route and status
            metrics = await client.get("/metrics")
            return loading, ready, metrics

    loading, ready, metrics = run(scenario)
    assert (loading.status_code, loading.text) == (503, "loading\n")
    assert (ready.status_code, ready.text) == (200, "ok\n")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "test_widgets 7.0" in metrics.text.splitlines()
    assert 'voice_broker_http_requests_total{route="/healthz",status="503"} 1.0' in metrics.text
    assert 'voice_broker_http_requests_total{route="/healthz",status="200"} 1.0' in metrics.text
    assert 'voice_broker_http_requests_total{route="/v1/models",status="401"} 1.0' in metrics.text


def test_openai_client_lists_and_retrieves_models_with_a_key():
    async def scenario():
        async with Api() as api:
            client = api.openai()
            listed = await client.models.list()
            one = await client.models.retrieve("piper:en_US-joe-medium")
            with pytest.raises(openai.NotFoundError) as missing:
                await client.models.retrieve("gpt-4o")
            return listed, one, missing.value

    listed, one, missing = run(scenario)
    assert [m.id for m in listed.data] == ["whisper-tiny.en", "piper:en_US-joe-medium"]
    assert all(m.object == "model" for m in listed.data)
    assert (one.id, one.owned_by) == ("piper:en_US-joe-medium", "piper")
    assert missing.status_code == 404 and missing.body["code"] == "not_found" and missing.body["param"] == "model"


def test_calls_without_or_with_a_bad_key_get_401_with_www_authenticate():
    async def scenario():
        async with Api() as api, httpx.AsyncClient(base_url=api.url) as client:
            answers = [
                await client.get("/v1/models"),
                await client.get("/v1/models", headers={"Authorization": "Bearer wvb_not_a_key"}),
                await client.get("/v1/models", headers={"Authorization": "Basic YWxpY2U6cHc="}),
                await client.get("/v1/models", headers={"Authorization": "Bearer wvb_bob_token"}),
            ]
            with pytest.raises(openai.AuthenticationError) as refused:
                await api.openai("wvb_wrong").models.list()
            return answers, refused.value

    (none, bad, basic, good), refused = run(scenario)
    for answer in (none, bad, basic):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith('Bearer realm="wyoming-voice-broker"')
        error = answer.json()["error"]
        assert (error["code"], error["type"]) == ("unauthorized", "authentication_error") and error["message"]
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert "invalid_token" not in none.headers["www-authenticate"]
    assert good.status_code == 200
    assert refused.status_code == 401 and refused.body["code"] == "unauthorized"


def test_auth_off_lets_calls_through_and_warns(caplog):
    caplog.set_level(logging.WARNING, logger="broker.http.app")

    async def scenario():
        async with Api(api_auth=False) as api:
            return await api.openai("anything").models.list()

    assert [m.id for m in run(scenario).data] == ["whisper-tiny.en", "piper:en_US-joe-medium"]
    assert any("--api-auth off" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_auth_on_needs_a_key_check():
    with pytest.raises(ValueError, match="no key check"):
        create_app(ApiConfig(api="127.0.0.1:0"), registry=CollectorRegistry(), is_ready=lambda: True,
                   list_models=lambda: [], check_key=None)


def test_errors_have_openais_shape_and_bodies_over_the_cap_get_413():
    async def scenario():
        async with Api(api_max_upload_bytes=1000) as api:
            @api.app.post("/test/upload")
            async def upload(request: Request, key: ApiKey) -> dict[str, int]:
                return {"bytes": len(await request.body())}

            @api.app.get("/test/needs-a-number")
            async def needs_a_number(n: int) -> dict[str, int]:
                return {"n": n}

            async def chunks():
                for _ in range(200):  # no Content-Length: counted as it arrives
                    yield b"z" * 1000

            auth = {"Authorization": "Bearer wvb_alice_token"}
            async with httpx.AsyncClient(base_url=api.url, headers=auth) as client:
                return [
                    await client.post("/test/upload", content=b"a" * 500),
                    await client.post("/test/upload", content=b"a" * 200_000),
                    await client.post("/test/upload", content=chunks()),
                    await client.get("/no/such/path"),
                    await client.get("/test/needs-a-number", params={"n": "many"}),
                ]

    small, declared, streamed, missing, invalid = run(scenario)
    assert (small.status_code, small.json()) == (200, {"bytes": 500})
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "too_large" and "larger than" in answer.json()["error"]["message"]
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid_request" and invalid.json()["error"]["param"] == "n"


def test_cors_preflight_for_configured_origins_only():
    async def scenario():
        async with Api(api_cors_origins=("https://chat.example.org",)) as api, \
                httpx.AsyncClient(base_url=api.url) as client:
            def preflight(origin: str) -> Awaitable[httpx.Response]:
                return client.options("/v1/models", headers={
                    "Origin": origin, "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization"})
            return (await preflight("https://chat.example.org"), await preflight("https://evil.example.com"),
                    await client.get("/v1/models", headers={"Origin": "https://chat.example.org"}))

    allowed, refused, unauthorized = run(scenario)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example.org"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # A refusal still carries CORS, so the browser page can read why.
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == "https://chat.example.org"


def test_openapi_document_and_docs_page():
    async def scenario():
        async with Api() as api, httpx.AsyncClient(base_url=api.url) as client:
            return await client.get("/openapi.json"), await client.get("/docs")

    spec, docs = run(scenario)
    assert spec.status_code == 200 and "/v1/models" in spec.json()["paths"]
    assert "HTTPBearer" in spec.json()["components"]["securitySchemes"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_stop_ends_open_streams_and_websockets_within_the_stop_call():
    """A streaming response that never ends on its own and a WebSocket that never closes:
    when stop returns, the server holds no connection and both clients see their end."""
    async def scenario():
        api = Api()
        produced = []

        @api.app.get("/test/endless")
        async def endless() -> StreamingResponse:
            async def forever():
                while True:
                    produced.append(1)
                    yield b"tick\n"
                    await asyncio.sleep(0.01)
            return StreamingResponse(forever(), media_type="text/plain")

        @api.app.websocket("/test/echo")
        async def echo(ws: WebSocket) -> None:
            await ws.accept()
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await ws.send_text(await ws.receive_text())

        await api.server.start()
        client = httpx.AsyncClient(base_url=api.url, timeout=PATIENCE)
        try:
            async with client.stream("GET", "/test/endless") as stream, \
                    websockets.connect(api.url.replace("http", "ws") + "/test/echo") as ws:
                pieces = stream.aiter_raw()
                first = await pieces.__anext__()
                await ws.send("hello")
                echoed = await ws.recv()
                open_before = api.server.connections
                await api.server.stop()
                open_after = api.server.connections
                stream_end: BaseException | None = None
                try:
                    async for _ in pieces:
                        pass
                except httpx.HTTPError as err:
                    stream_end = err
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                refused = None
                try:
                    await client.get("/healthz")
                except httpx.ConnectError as err:
                    refused = err
                return first, echoed, open_before, open_after, stream_end, refused, api.app.state.stopping.is_set()
        finally:
            await client.aclose()
            await api.server.stop()

    first, echoed, open_before, open_after, stream_end, refused, stopping = run(scenario)
    assert first.startswith(b"tick") and echoed == "hello"
    assert open_before == 2 and open_after == 0
    assert isinstance(stream_end, httpx.RemoteProtocolError)  # cut, not a clean end of the body
    assert refused is not None and stopping


def test_tls_with_certificate_and_key(tmp_path):
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed to make the test certificates (scripts/setup.sh test installs it)")
    from mqtt_helpers import make_certificates

    make_certificates(tmp_path)

    async def scenario():
        async with Api(api_tls_cert=str(tmp_path / "server.crt"), api_tls_key=str(tmp_path / "server.key")) as api:
            async with httpx.AsyncClient(base_url=api.url, verify=ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))) as client:
                answer = await client.get("/healthz")
            plain = api.url.replace("https://", "http://")
            async with httpx.AsyncClient(base_url=plain) as client:
                with pytest.raises(httpx.HTTPError):
                    await client.get("/healthz")
            return api.url, answer

    url, answer = run(scenario)
    assert url.startswith("https://127.0.0.1:")
    assert (answer.status_code, answer.text) == (200, "ok\n")


def test_start_errors_name_the_option(tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")

    async def scenario():
        async with Api() as first:
            taken = ApiServer(first.app, ApiConfig(api=f"127.0.0.1:{first.server.port}"))
            with pytest.raises(ConfigError, match=r"--api 127\.0\.0\.1:\d+: address already in use"):
                await taken.start()
        bad_tls = ApiServer(first.app, ApiConfig(api="127.0.0.1:0", api_tls_cert=str(garbage),
                                                 api_tls_key=str(garbage)))
        with pytest.raises(ConfigError, match="--api-tls-cert"):
            await bad_tls.start()

    run(scenario)


@pytest.mark.parametrize("argv, message", [
    (["--no-mqtt"], "--no-mqtt needs --api HOST:PORT"),
    (["--api", "127.0.0.1:8000", "--api-tls-key", "README.md"], "--api-tls-cert and --api-tls-key go together"),
    (["--api-tls-cert", "README.md", "--api-tls-key", "README.md"], "--api-tls-cert needs --api"),
    (["--api", "127.0.0.1:8000", "--no-mqtt", "--embedded-mqtt"], "contradict"),
    (["--api", "127.0.0.1:8000", "--api-auth", "maybe"], "--api-auth"),
    (["--api", "nowhere"], "--api"),
])
def test_api_option_mistakes_are_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_api_options_resolve_from_flags_and_environment(monkeypatch):
    monkeypatch.setenv("BROKER_API_CORS_ORIGINS", "https://a.example,https://b.example")
    config = parse_config(["--api", "0.0.0.0:8000", "--no-mqtt", "--api-auth", "off",
                           "--api-max-streams-per-key", "2"])
    assert (config.api, config.mqtt, config.api_auth, config.api_max_streams_per_key) == ("0.0.0.0:8000", False,
                                                                                         False, 2)
    assert config.api_cors_origins == ("https://a.example", "https://b.example")
    assert ApiConfig.of(config).api_max_upload_bytes == 25 * 1024 * 1024


def test_start_api_serves_the_fronts_routers_with_their_state_and_the_callers_key():
    """What the bridge's wiring calls: routers added, state for them, the key object handed over."""
    router = APIRouter()

    @router.get("/test/whoami")
    async def whoami(request: Request, key: ApiKey) -> dict[str, object]:
        return {"key": key, "core": request.app.state.core}

    async def scenario():
        server = await start_api(ApiConfig(api="127.0.0.1:0"), registry=CollectorRegistry(), is_ready=lambda: True,
                                 list_models=lambda: MODELS, check_key=KEYS.get, routers=[router],
                                 state={"core": "the core"})
        try:
            async with httpx.AsyncClient(base_url=server.url) as client:
                return (await client.get("/test/whoami", headers={"Authorization": "Bearer wvb_bob_token"}),
                        await client.get("/test/whoami"))
        finally:
            await server.stop()

    known, anonymous = run(scenario)
    assert known.json() == {"key": "bob", "core": "the core"}
    assert anonymous.status_code == 401


def test_keys_never_reach_the_log_even_at_debug(caplog):
    """An accepted key, a refused one, and a key inside a WebSocket message: none is logged,
    though the servers log at DEBUG (the websockets library would trace headers and frames)."""
    caplog.set_level(logging.DEBUG)
    secret_in_frame = "wvb_frame_secret_token"

    async def scenario():
        async with Api() as api:
            @api.app.websocket("/test/echo")
            async def echo(ws: WebSocket) -> None:
                await ws.accept()
                with contextlib.suppress(WebSocketDisconnect):
                    while True:
                        await ws.send_text(await ws.receive_text())

            async with httpx.AsyncClient(base_url=api.url) as client:
                await client.get("/v1/models", headers={"Authorization": "Bearer wvb_alice_token"})
                await client.get("/v1/models", headers={"Authorization": "Bearer wvb_refused_token"})
            async with websockets.connect(api.url.replace("http", "ws") + "/test/echo",
                                          additional_headers={"Authorization": "Bearer wvb_bob_token"}) as ws:
                await ws.send(f'{{"type": "start", "authToken": "{secret_in_frame}"}}')
                return await ws.recv()

    assert secret_in_frame in run(scenario)
    server_records = [r for r in caplog.records if r.name.startswith(("uvicorn", "broker"))]
    assert any("connection open" in r.getMessage() for r in server_records)  # the server did log
    for token in ("wvb_alice_token", "wvb_refused_token", "wvb_bob_token", secret_in_frame):
        assert all(token not in r.getMessage() for r in server_records), token


def test_multipart_upload_decodes_in_a_thread_and_the_cap_refuses_bigger_files():
    """The pieces a transcription route is made of: a multipart form (python-multipart), the
    body cap, decode_audio off the event loop, errors from the codec in OpenAI's shape."""
    raw = JFK_FLAC.read_bytes()

    async def scenario():
        async with Api(api_max_upload_bytes=len(raw) + 10) as api:
            @api.app.post("/test/decode")
            async def decode(key: ApiKey, file: UploadFile, model: str = Form()) -> dict[str, object]:
                data = await file.read()
                try:
                    audio = await asyncio.to_thread(decode_audio, data, max_bytes=api.config.api_max_upload_bytes,
                                                    max_seconds=api.config.api_max_audio_seconds, rate=16000,
                                                    mono=True)
                except AudioCodecError as err:
                    raise ApiError(str(err), err.code, param="file") from err
                return {"model": model, "seconds": audio.seconds}

            auth = {"Authorization": "Bearer wvb_alice_token"}
            async with httpx.AsyncClient(base_url=api.url, headers=auth, timeout=PATIENCE) as client:
                def post(data: bytes) -> Awaitable[httpx.Response]:
                    return client.post("/test/decode", data={"model": "whisper-1"},
                                       files={"file": ("speech.flac", data, "audio/flac")})
                return await post(raw), await post(b"not audio at all"), await post(raw + bytes(200_000))

    good, garbage, too_big = run(scenario)
    assert good.status_code == 200, good.text
    assert good.json() == {"model": "whisper-1", "seconds": 11.0}
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == "invalid_format" and garbage.json()["error"]["param"] == "file"
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
