"""Running a Wyoming server: serve --uri (tcp, unix or stdio), one handler per connection.

The runtime owns what every service needs around its protocol handler: bounded
event reading, an `error` event (then close) for every failure, a cap on open
connections, and a clean shutdown on SIGTERM/SIGINT that cancels the work of
every connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from wyoming.error import Error
from wyoming.event import Event

from .errors import WyomingCode
from .listen import Listener
from .protocol import ClientGone, ProtocolError, read_event, write_event
from .settings import ConnectionLimits

_LOGGER = logging.getLogger(__name__)

HEADER_LINE_LIMIT = 1024 * 1024
#: On SIGTERM every connection ends within SHUTDOWN_SECONDS: it sends `shutting_down`, drains
#: what the client still sends for SHUTDOWN_LINGER (so the error is not lost to a reset), and a
#: connection still open after SHUTDOWN_GRACE is aborted.
SHUTDOWN_SECONDS = 0.9
SHUTDOWN_GRACE = 0.6
SHUTDOWN_LINGER = 0.3
#: A client that stops reading for this long while we write to it counts as gone.
WRITE_TIMEOUT = 30.0


class Connection:
    """Base of a protocol handler: one instance per client connection.

    Subclasses implement `handle_event` (return False to close) and may start
    background tasks with `spawn`; those are cancelled when the client goes.
    """

    def __init__(self, writer: asyncio.StreamWriter, limits: ConnectionLimits) -> None:
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
            await write_event(event, self._writer, WRITE_TIMEOUT)

    async def send_error(self, text: str, code: WyomingCode) -> None:
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


ConnectionFactory = Callable[[asyncio.StreamWriter, ConnectionLimits], Connection]


class WyomingServer:
    """Accepts connections and drives a `Connection` per client."""

    def __init__(self, uri: str, factory: ConnectionFactory, limits: ConnectionLimits) -> None:
        self.uri = uri
        self._factory = factory
        self._limits = limits
        self._listener: Listener | None = None
        #: Each connection's task and its writer (stop() aborts the transport of a straggler).
        self._clients: dict[asyncio.Task, asyncio.StreamWriter] = {}

    @property
    def port(self) -> int | None:
        return self._listener.port if self._listener is not None else None

    @property
    def finished(self) -> asyncio.Task | None:
        """With stdio://, the one connection (the process ends when it does); else None."""
        return self._listener.finished if self._listener is not None else None

    def bind(self) -> None:
        """Claim the address (before models load); ConfigError if it cannot be had."""
        if self._listener is None:
            self._listener = Listener.claim(self.uri)

    async def start(self) -> None:
        self.bind()
        assert self._listener is not None
        await self._listener.open(self._on_client, HEADER_LINE_LIMIT)
        _LOGGER.info("listening on %s", self.uri)

    async def stop(self) -> None:
        """End every connection within about SHUTDOWN_SECONDS, each with `shutting_down`.

        Client tasks are cancelled (each sends the error and closes); one that has not
        ended after SHUTDOWN_GRACE (a peer that stops reading, a handler stuck in a
        write) has its transport aborted and is cancelled again, so SIGTERM never
        waits on a client.
        """
        listener = self._listener
        if listener is not None:
            listener.stop_accepting()
        clients = dict(self._clients)
        for task in clients:
            task.cancel()
        if clients:
            _done, pending = await asyncio.wait(clients, timeout=SHUTDOWN_GRACE)
            if pending:
                _LOGGER.warning("aborting %d connection(s) that did not close on shutdown", len(pending))
                for task in pending:
                    clients[task].transport.abort()
                    task.cancel()
                await asyncio.wait(pending, timeout=SHUTDOWN_SECONDS - SHUTDOWN_GRACE)
        if listener is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_SECONDS - SHUTDOWN_GRACE):
                    await listener.wait_closed()
            listener.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # stop() cancelled it; Python 3.11's stream callback would log it as an error
        finally:
            self._clients.pop(task, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self._factory(writer, self._limits)
        try:
            if len(self._clients) > self._limits.max_connections:
                await conn.send_error("too many open connections", WyomingCode.BUSY)
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
            await _close_with_error(conn, err.text, err.code)
            await _linger(reader, writer)
        except ClientGone:
            _LOGGER.debug("client went away")
        except asyncio.CancelledError:
            await _close_with_error(conn, "server is shutting down", WyomingCode.SHUTTING_DOWN)
            await _linger(reader, writer, SHUTDOWN_LINGER)  # a streaming client still gets the error
            raise
        except Exception as err:  # a bug or backend fault: tell the client, keep serving others
            _LOGGER.exception("unexpected error while handling a client")
            await _close_with_error(conn, f"internal error: {type(err).__name__}", WyomingCode.INTERNAL_ERROR)
            await _linger(reader, writer)
        finally:
            conn.closed = True
            await conn.cancel_tasks()
            with contextlib.suppress(Exception):
                await conn.on_close()
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()


async def _close_with_error(conn: Connection, text: str, code: WyomingCode) -> None:
    """Stop the connection's background work first, so nothing follows the error event."""
    conn.closed = True
    await conn.cancel_tasks()
    await conn.send_error(text, code)


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
            async with asyncio.timeout(remaining):
                data = await reader.read(65536)
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
    """A cap on concurrent sessions, with an optional bounded first-come-first-served queue.

    `try_acquire` never waits (overload answers `busy` at once). `acquire` lets up to
    `max_waiting` requests wait up to `timeout` s for a slot, in arrival order; `busy` only
    past that. A released slot goes straight to the oldest waiter, so a newcomer never
    overtakes the queue.
    """

    def __init__(self, limit: int, max_waiting: int = 0, timeout: float = 0.0) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.timeout = timeout
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return sum(1 for fut in self._waiters if not fut.done())

    def try_acquire(self) -> bool:
        if self.active >= self.limit or self.waiting:
            return False
        self.active += 1
        return True

    async def acquire(self) -> bool:
        """Take a slot, waiting in line if allowed; False when the line is full or the wait
        runs out. A caller cancelled while waiting holds no slot."""
        if self.try_acquire():
            return True
        if self.waiting >= self.max_waiting or self.timeout <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(fut)
            return True
        except TimeoutError:
            if fut.done():  # the slot was handed over as the wait ran out: keep it
                return True
            fut.cancel()
            return False
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over, but the caller is gone: pass it on
            else:
                fut.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes to the oldest waiter; `active` stays
                return
        self.active = max(0, self.active - 1)
