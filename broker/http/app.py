"""The HTTP front's ASGI app: FastAPI, with what every route shares.

`create_app` builds it from the API section of the configuration and what the bridge
passes in (its Prometheus registry, its readiness, the models the services offer, the
key check), so this module knows nothing of sessions, MQTT or SQLite. It serves
`/healthz`, `/metrics`, `GET /v1/models` (`openai`'s `client.models.list()`), and the
OpenAPI document with its pages at `/docs`; the audio routes and WebSockets are added to
the returned app (`app.include_router`). Every app has:

- errors in OpenAI's shape with the project's codes (errors.py);
- the key check as a dependency (auth.py: `key: ApiKey` in a route);
- a cap on every request body (`--api-max-upload-bytes` plus room for the multipart
  envelope), counted as the body arrives, so an upload over it is refused with 413
  before it is stored; FastAPI would otherwise spool any size to a temporary file;
- CORS for the configured origins, outside everything else, so refusals carry it too;
- `voice_broker_http_requests_total{route,status}` in the bridge's registry;
- `app.state.stopping`, an asyncio.Event the server sets when the bridge stops, for
  streams and WebSockets that want to end with a word of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.config import ApiConfig

from .auth import ApiKey, KeyCheck
from .errors import ApiError, HttpOnlyCode, error_body, install_error_handlers

_LOGGER = logging.getLogger(__name__)

#: Room for the multipart envelope and the form's small fields around an uploaded file.
ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ModelInfo:
    """One entry of `GET /v1/models` (OpenAI's Model object)."""

    id: str
    owned_by: str = "wyoming-voice-broker"
    created: int = 0


ListModels = Callable[[], Iterable[ModelInfo]]


def create_app(config: ApiConfig, *, registry: CollectorRegistry, is_ready: Callable[[], bool],
               list_models: ListModels, check_key: KeyCheck | None) -> FastAPI:
    """The app, without the audio routes. `check_key` is required unless `config.api_auth`
    is off (then calls need no key, and a warning says so); one app per `registry`."""
    if config.api_auth and check_key is None:
        raise ValueError("API auth is on but no key check was given")
    if not config.api_auth:
        _LOGGER.warning("the HTTP API takes calls without a key (--api-auth off): anyone who can reach %s may "
                        "use it", config.api)
    app = FastAPI(
        title="wyoming-voice-broker",
        summary="Speech-to-text and text-to-speech over HTTP (OpenAI-compatible /v1/audio/*) and WebSockets",
        version="1",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.config = config
    app.state.check_key = check_key if config.api_auth else None
    app.state.stopping = asyncio.Event()
    install_error_handlers(app)
    _add_base_routes(app, registry, is_ready, list_models)
    # Starlette wraps later middleware around earlier: CORS ends up outermost, and the
    # metrics count the body limit's refusals too.
    app.add_middleware(BodyLimit, max_bytes=config.api_max_upload_bytes + ENVELOPE_BYTES)
    app.add_middleware(RequestMetrics, counter=Counter(
        "requests", "HTTP API requests answered, by route and status", ["route", "status"],
        namespace="voice_broker_http", registry=registry))
    if config.api_cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.api_cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"], allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"], max_age=600,
        )
    return app


def _add_base_routes(app: FastAPI, registry: CollectorRegistry, is_ready: Callable[[], bool],
                     list_models: ListModels) -> None:
    @app.get("/healthz", response_class=PlainTextResponse, tags=["operations"],
             responses={503: {"description": "Still starting or stopping"}})
    async def healthz() -> PlainTextResponse:
        """`ok` once the bridge is ready, else 503 `loading` (no key needed)."""
        ready = is_ready()
        return PlainTextResponse("ok\n" if ready else "loading\n", status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """The bridge's Prometheus metrics (no key needed)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", tags=["openai"])
    async def models(key: ApiKey) -> dict[str, Any]:
        """The models and voices the bridge's services offer (OpenAI's model list)."""
        return {"object": "list", "data": [_model_object(model) for model in list_models()]}

    @app.get("/v1/models/{model_id:path}", tags=["openai"])
    async def model(model_id: str, key: ApiKey) -> dict[str, Any]:
        """One model of the list, or 404."""
        for entry in list_models():
            if entry.id == model_id:
                return _model_object(entry)
        raise ApiError(f"no model {model_id!r} (GET /v1/models lists them)", HttpOnlyCode.NOT_FOUND, param="model")


def _model_object(model: ModelInfo) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": model.owned_by}


class BodyTooLarge(Exception):
    """Raised into the app when a request body passes the cap (BodyLimit answers 413)."""


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413 `too_large`, whatever the route
    would have said: by its Content-Length before the route runs, else when the running
    count passes the cap (the app then sees BodyTooLarge from `receive`; an answer it
    makes of that is replaced).

    Before answering, up to DRAIN_BYTES more of the body are read and dropped: a client
    still sending when the server closes gets a connection reset instead of the 413.
    Past that, the 413 goes out and the connection closes.
    """

    DRAIN_BYTES = 1024 * 1024

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(receive, send, drain=True)
            return
        seen = 0
        over = False
        body_done = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, over, body_done
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > self.max_bytes:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to the cut body is replaced by the 413 below
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        if over and not started:
            await self._refuse(receive, send, drain=not body_done)

    async def _refuse(self, receive: Receive, send: Send, *, drain: bool) -> None:
        drained = 0
        while drain and drained <= self.DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client is gone
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers, body = _json_error(f"the request body is larger than {self.max_bytes} bytes", "too_large", 413)
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _json_error(text: str, code: str, status: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    import json

    body = json.dumps(error_body(text, code, status)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    return headers, body


class RequestMetrics:
    """Counts answered requests by route template (`/v1/models`, not the raw path, so a
    scan of random paths adds one label value, `unmatched`) and status."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            route = scope.get("route")
            self.counter.labels(getattr(route, "path", "unmatched"), str(status)).inc()
