"""Runs the HTTP app with uvicorn inside the bridge's event loop, started and stopped by the bridge.

uvicorn's own runner (`uvicorn.run`, `Server.serve`) installs signal handlers and
exits the process when it cannot listen; the bridge owns both, so `ApiServer` binds the
socket itself (a port in use is a ConfigError naming --api, one line and exit 2 at start)
and drives uvicorn's `startup`, `main_loop` and `shutdown` steps directly.

`stop` ends every connection within about a second: it sets `app.state.stopping` (for
streams that want to say goodbye), lets uvicorn close idle connections and send close
frames to WebSockets, gives open responses `GRACE` seconds to finish, then has uvicorn
cancel what is still running, and finally aborts any connection that is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping

import uvicorn
import websockets
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from broker.config import ApiConfig
from voice_common.config import ConfigError, parse_host_port

from .app import ListModels, create_app
from .auth import KeyCheck

_LOGGER = logging.getLogger(__name__)

#: Seconds open responses get to finish after stop, before they are cancelled.
GRACE = 0.5
#: Seconds after which stop stops waiting for uvicorn and aborts what is left.
HARD_STOP = 0.9


class _QuietCuts(logging.Filter):
    """uvicorn logs the responses it cancels at stop as errors with a traceback; they are
    the stop working as meant, so they are told once, at INFO, by `ApiServer.stop`."""

    def __init__(self) -> None:
        super().__init__()
        self.cut = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            self.cut += 1
            return False
        return "timeout graceful shutdown exceeded" not in record.getMessage()


class _NoWireTraces(logging.Filter):
    """At DEBUG, the websockets library (under uvicorn's logger) traces every header and
    frame: an `Authorization` header, a `start` message's `authToken`, audio. Keys and
    audio never reach a log, so those traces are dropped; uvicorn's own lines stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG or not record.pathname.startswith(_WEBSOCKETS_DIR)


_WEBSOCKETS_DIR = os.path.dirname(websockets.__file__)
_NO_WIRE_TRACES = _NoWireTraces()


class ApiServer:
    """`await start()` listens on `--api` (HTTPS with --api-tls-cert/--api-tls-key),
    `await stop()` ends it; `port` is the port bound (useful with port 0)."""

    def __init__(self, app: FastAPI, config: ApiConfig) -> None:
        if not config.api:
            raise ValueError("ApiServer needs --api HOST:PORT")
        self.app = app
        self.host, self.port = parse_host_port(config.api)
        self.tls = bool(config.api_tls_cert)
        self._uvicorn_config = uvicorn.Config(
            app, host=self.host, port=self.port, ssl_certfile=config.api_tls_cert, ssl_keyfile=config.api_tls_key,
            lifespan="off", log_config=None, access_log=False, http="h11", ws="websockets-sansio",
            # Seconds as a float work (uvicorn hands them to asyncio.wait_for); its hint says int.
            timeout_graceful_shutdown=GRACE,  # type: ignore[arg-type]
            server_header=False, proxy_headers=False,
        )
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._state: uvicorn.server.ServerState | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def start(self) -> None:
        """Listen and serve; a ConfigError (naming the option) if the address or the TLS
        files cannot be used."""
        config = self._uvicorn_config
        try:
            config.load()
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"--api-tls-cert/--api-tls-key: cannot use them ({err})") from err
        self._socket = self._bind()
        logging.getLogger("uvicorn.error").addFilter(_NO_WIRE_TRACES)  # a filter is added once
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._socket])
        self._server, self._state = server, server.server_state
        self._task = asyncio.ensure_future(self._serve(server))
        _LOGGER.info("HTTP API on %s (docs: %s/docs)", self.url, self.url)

    def _bind(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _name, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as err:
            raise ConfigError(f"--api {self.host}:{self.port}: {err.strerror or err}") from err
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.setblocking(False)
        except OSError as err:
            sock.close()
            reason = "address already in use" if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
            raise ConfigError(f"--api {self.host}:{self.port}: {reason} (choose another address)") from err
        self.port = sock.getsockname()[1]
        return sock

    async def _serve(self, server: uvicorn.Server) -> None:
        await server.main_loop()
        await server.shutdown(sockets=[self._socket] if self._socket else None)

    @property
    def connections(self) -> int:
        """HTTP and WebSocket connections open now, by uvicorn's own count (0 once stop has
        returned)."""
        return len(self._state.connections) if self._state else 0

    async def stop(self) -> None:
        """Stop listening and end every connection, open streams and WebSockets included."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self.app.state.stopping.set()
        quiet = _QuietCuts()
        logging.getLogger("uvicorn.error").addFilter(quiet)
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), HARD_STOP)
        except TimeoutError:
            _LOGGER.warning("HTTP API: connections still open %.1f s after stop; aborting them", HARD_STOP)
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for leftover in list(server.server_state.tasks):
            leftover.cancel()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)  # aborted transports report connection_lost: uvicorn forgets them
        self._server = self._task = None
        logging.getLogger("uvicorn.error").removeFilter(quiet)
        _LOGGER.info("HTTP API stopped%s", f" ({quiet.cut} open response(s) cut)" if quiet.cut else "")


async def start_api(config: ApiConfig, *, registry: CollectorRegistry, is_ready: Callable[[], bool],
                    list_models: ListModels, check_key: KeyCheck | None, routers: Iterable[APIRouter] = (),
                    state: Mapping[str, object] | None = None) -> ApiServer:
    """What the bridge's wiring calls when `--api` is set: the app (create_app) with the
    front's `routers` added and `state` put on `app.state` (the core, the limits, ... for
    the routes to find), listening. `await server.stop()` at the end; a ConfigError if
    the address or the TLS files cannot be used."""
    app = create_app(config, registry=registry, is_ready=is_ready, list_models=list_models, check_key=check_key)
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    for router in routers:
        app.include_router(router)
    server = ApiServer(app, config)
    await server.start()
    return server
