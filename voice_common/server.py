"""Running a Wyoming server: listen on --uri, one handler per connection.

The runtime owns what every service needs around its protocol handler: bounded
event reading, an `error` event (then close) for every failure, a cap on open
connections, and a clean shutdown on SIGTERM/SIGINT that cancels the work of
every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlparse

from wyoming.error import Error
from wyoming.event import Event

from .protocol import ClientGone, ProtocolError, read_event, write_event

_LOGGER = logging.getLogger(__name__)

HEADER_LINE_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_frame_bytes: int = 4 * 1024 * 1024
    idle_timeout: float = 30.0
    read_timeout: float = 10.0
    write_timeout: float = 30.0
    max_connections: int = 64

    @classmethod
    def from_config(cls, config) -> "Limits":
        return cls(
            max_frame_bytes=config.max_frame_bytes,
            idle_timeout=config.idle_timeout,
            read_timeout=config.read_timeout,
            max_connections=config.max_connections,
        )


class Connection:
    """Base of a protocol handler: one instance per client connection.

    Subclasses implement `handle_event` (return False to close) and may start
    background tasks with `spawn`; those are cancelled when the client goes.
    """

    def __init__(self, writer: asyncio.StreamWriter, limits: Limits) -> None:
        self._writer = writer
        self._limits = limits
        self._tasks: set[asyncio.Task] = set()
        self._write_lock = asyncio.Lock()
        self.closed = False

    async def handle_event(self, event: Event) -> bool:
        raise NotImplementedError

    async def on_close(self) -> None:
        """Release what the connection holds (sessions, buffers)."""

    def idle_timeout(self) -> float | None:
        return self._limits.idle_timeout

    async def write(self, event: Event) -> None:
        async with self._write_lock:
            await write_event(event, self._writer, self._limits.write_timeout)

    async def send_error(self, text: str, code: str) -> None:
        """Send an error event; the runtime closes the connection afterwards."""
        with contextlib.suppress(ClientGone):
            await self.write(Error(text=text, code=code).event())

    def spawn(self, coro: Awaitable, name: str = "") -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is not None and not isinstance(err, ClientGone):
            _LOGGER.error("background task %s failed: %r", task.get_name(), err)

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


ConnectionFactory = Callable[[asyncio.StreamWriter, Limits], Connection]


class WyomingServer:
    """Accepts connections and drives a `Connection` per client."""

    def __init__(self, uri: str, factory: ConnectionFactory, limits: Limits) -> None:
        self.uri = uri
        self._factory = factory
        self._limits = limits
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task] = set()

    @property
    def port(self) -> int | None:
        if self._server is None or not self._server.sockets:
            return None
        name = self._server.sockets[0].getsockname()
        return name[1] if isinstance(name, tuple) else None

    async def start(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme == "tcp":
            if parsed.port is None:
                raise ValueError(f"no port in {self.uri}")
            self._server = await asyncio.start_server(
                self._on_client, parsed.hostname or "0.0.0.0", parsed.port,
                limit=HEADER_LINE_LIMIT, reuse_address=True,
            )
        elif parsed.scheme == "unix":
            path = parsed.netloc + parsed.path
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._server = await asyncio.start_unix_server(
                self._on_client, path, limit=HEADER_LINE_LIMIT
            )
        else:
            raise ValueError(f"unsupported URI (use tcp:// or unix://): {self.uri}")
        _LOGGER.info("listening on %s", self.uri)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # stop() cancelled it; Python 3.11's stream callback would log it as an error
        finally:
            self._clients.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self._factory(writer, self._limits)
        try:
            if len(self._clients) > self._limits.max_connections:
                await conn.send_error("too many open connections", "busy")
                return
            while True:
                event = await read_event(
                    reader,
                    max_frame_bytes=self._limits.max_frame_bytes,
                    idle_timeout=conn.idle_timeout(),
                    read_timeout=self._limits.read_timeout,
                )
                if event is None or not await conn.handle_event(event):
                    break
        except ProtocolError as err:
            _LOGGER.info("closing connection: %s (%s)", err.text, err.code)
            await conn.send_error(err.text, err.code)
            await _linger(reader, writer)
        except ClientGone:
            _LOGGER.debug("client went away")
        except asyncio.CancelledError:
            await conn.send_error("server is shutting down", "shutting_down")
            raise
        except Exception as err:  # a bug or backend fault: tell the client, keep serving others
            _LOGGER.exception("unexpected error while handling a client")
            await conn.send_error(f"internal error: {type(err).__name__}", "internal_error")
            await _linger(reader, writer)
        finally:
            conn.closed = True
            await conn.cancel_tasks()
            with contextlib.suppress(Exception):
                await conn.on_close()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float = 2.0) -> None:
    """After an error, half-close and discard what the client still sends.

    Closing a socket with unread input makes the kernel send RST, which can
    destroy the error event before the client reads it (a client streaming
    audio keeps writing). Draining briefly lets the error arrive intact.
    """
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        discarded = 0
        while discarded < 64 * 1024 * 1024:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            data = await asyncio.wait_for(reader.read(65536), remaining)
            if not data:
                break
            discarded += len(data)


async def wait_for_stop_signal() -> None:
    """Block until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class SessionSlots:
    """A non-blocking cap on concurrent sessions: overload answers `busy`, never queues."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)
