"""A tiny HTTP endpoint: `/healthz` (200 once ready, else 503) and `/metrics`.

Built on asyncio streams so it shares the server's event loop and needs no web
framework; it answers GET only and bounds what it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .config import ConfigError

_LOGGER = logging.getLogger(__name__)


class HealthServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, is_ready: Callable[[], bool]) -> None:
        self.host = host
        self.port = port
        self._registry = registry
        self._is_ready = is_ready
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen; a ConfigError naming --http if the address cannot be had (a port in use)."""
        try:
            self._server = await asyncio.start_server(self._on_client, self.host, self.port, limit=8192)
        except OSError as err:
            reason = "address already in use" if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
            raise ConfigError(f"--http {self.host}:{self.port}: {reason} (choose another address)") from err
        self.port = self._server.sockets[0].getsockname()[1]
        _LOGGER.info("health and metrics on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/healthz":
                ready = self._is_ready()
                status = "200 OK" if ready else "503 Service Unavailable"
                ctype, body = "text/plain", b"ok\n" if ready else b"loading\n"
            elif path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()
