"""What STT and TTS sessions share: an inbox fed by a front, timeouts, failover, the sink.

A front never blocks on a session: it validates a message and the session puts it in its
inbox (bounded by the byte/length caps checked before queueing); the session's own task
(started by `Core`) does the slow work and sends its results to the front's `Sink`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from voice_common.errors import MqttCode

from ..config import SessionConfig
from .errors import SessionError
from .metrics import BrokerMetrics
from .results import Result, Sink, SinkFailed
from .services import Service, ServicePool
from .wyoming_client import BackendBusy, ServiceFailure

T = TypeVar("T")

#: Wyoming error codes of a service that mean the same for the requester (the rest: backend_error).
_PASSED_ON = {code.value: code for code in (MqttCode.INVALID_FORMAT, MqttCode.TOO_LARGE, MqttCode.TIMEOUT)}


@dataclass(frozen=True)
class Deps:
    """The core parts a session uses."""

    pool: ServicePool
    config: SessionConfig
    metrics: BrokerMetrics


class Cancel:
    """Inbox item: the requester cancelled."""


def backend_error(text: str, code: str | None) -> SessionError:
    """Map a Wyoming `error` event from a service to the error the requester gets."""
    passed_on = _PASSED_ON.get(code or "")
    if passed_on is not None:
        return SessionError(text, passed_on)
    return SessionError(f"{code or 'error'}: {text}", MqttCode.BACKEND_ERROR)


#: `Session.next_item_or`: the service's reader finished before the next inbox item came.
READER_DONE = object()


class Session:
    """Base of one request in progress (at a site, or from an API request with no site)."""

    kind = ""  # "asr" or "tts": the Wyoming service kind
    backend = ""  # metric label: "stt" or "tts"

    def __init__(self, site: str | None, ident: str, sink: Sink, deps: Deps) -> None:
        self.site = site
        self.ident = ident
        self.sink = sink
        self.deps = deps
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.opened = time.monotonic()
        self.task: asyncio.Task | None = None
        #: Why the session was cut off from outside (a front's outage, shutdown); its
        #: `interrupted` Failure is sent by `Core.interrupt`, not by the session.
        self.interrupted: str | None = None
        #: Frees the session's site and slot (set by `Core`). Called before the session's
        #: last result goes out, so whoever sees that result can start the next request at
        #: once instead of racing the release and getting `busy`.
        self.release: Callable[[], None] = lambda: None
        #: Holds a slot (and its site) until released; set by `Core`.
        self.holds_slot = False
        #: The sessions by site of its kind, which `Core` frees it from.
        self.registry: dict[str, Session] = {}

    async def emit(self, result: Result) -> None:
        """Send one result to the sink; a sink that raises ends the session (SinkFailed)."""
        try:
            await self.sink.send(result)
        except Exception as err:
            raise SinkFailed(f"the sink of session {self.ident} failed: {err!r}") from err

    def cancel(self) -> None:
        self.inbox.put_nowait(Cancel())

    def fail(self, err: SessionError) -> None:
        """End the session with `err` (raised by the session's own task)."""
        self.inbox.put_nowait(err)

    async def next_item(self, timeout: float | None = None) -> Any:
        """The next inbox item; raises SessionError on timeout, cancel or a queued error."""
        if self.interrupted is not None:  # ended from outside (outage, shutdown); normally by cancellation
            raise asyncio.CancelledError
        timeout = self.deps.config.idle_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):  # unlike wait_for (3.11), never swallows a cancel
                item = await self.inbox.get()
        except TimeoutError:
            raise SessionError(f"nothing received for {timeout:g} s", MqttCode.TIMEOUT) from None
        if isinstance(item, Cancel):
            raise SessionError("cancelled by the requester", MqttCode.CANCELLED)
        if isinstance(item, SessionError):
            raise item
        return item

    async def next_item_or(self, reader: asyncio.Future) -> Any:
        """The next inbox item, or READER_DONE when `reader` (the service's side of the
        exchange) finished first. The inbox read never outlives the call, not even when the
        session is cancelled while waiting (an outage, shutdown)."""
        getter = asyncio.ensure_future(self.next_item())
        try:
            await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader_first = not getter.done()
            if reader_first:
                getter.cancel()
        return READER_DONE if reader_first else getter.result()

    def candidates(self) -> list[Service]:
        """The services to try, in order (the pool's: least busy healthy ones first)."""
        return self.deps.pool.candidates(self.kind)

    async def failover(self, attempt: Callable[[Service], Awaitable[T]], can_retry: Callable[[], bool]) -> T:
        """Run `attempt` on the least busy service; on failure move on to the next one."""
        pool = self.deps.pool
        tried = busy = 0
        for service in self.candidates():
            if tried and not can_retry():
                break
            tried += 1
            async with pool.lease(service):
                try:
                    return await attempt(service)
                except BackendBusy:
                    busy += 1
                    continue
                except ServiceFailure as err:
                    pool.mark_failed(service, err)
                    if not can_retry():
                        raise SessionError(
                            f"the {self.backend.upper()} service failed", MqttCode.BACKEND_ERROR) from err
                    self.deps.metrics.failovers.labels(self.backend).inc()
        what = "speech-to-text" if self.kind == "asr" else "text-to-speech"
        if tried and busy == tried:
            raise SessionError(f"every {what} service is busy", MqttCode.BUSY)
        if tried:
            raise SessionError(f"every {what} service is down or busy", MqttCode.SERVICE_UNAVAILABLE)
        raise SessionError(f"no {what} service is available", MqttCode.SERVICE_UNAVAILABLE)

    async def run(self) -> None:
        """Do the work and send the last result (Final or Done); raises SessionError."""
        raise NotImplementedError


class AudioInput(Session):
    """A session that a front feeds with audio: chunks of any byte count, then `stop`.

    Bounded here, before anything is queued: a chunk over `--max-chunk-bytes`, or audio past
    `max_audio_bytes`, ends the session with `too_large`. Once stopped, failed or cancelled
    (`closed`) no more input is taken. Subclasses call `accept_audio` in their `__init__`.
    """

    def accept_audio(self, max_audio_bytes: int, too_long: str) -> None:
        self.max_audio_bytes = max_audio_bytes
        self._too_long = too_long
        self.received_bytes = 0
        self.received_chunks = 0
        self.closed = False  # no more input accepted (stopped, failed or cancelled)

    # Called by a front: validate and queue, never block.
    def feed(self, chunk: bytes) -> None:
        """Queue one audio message, of any byte count."""
        if self.closed:
            return
        if len(chunk) > self.deps.config.max_chunk_bytes:
            self.fail(SessionError("audio chunk larger than the limit", MqttCode.TOO_LARGE))
        elif self.received_bytes + len(chunk) > self.max_audio_bytes:
            self.fail(SessionError(self._too_long, MqttCode.TOO_LARGE))
        else:
            self.received_bytes += len(chunk)
            self.received_chunks += 1
            if chunk:
                self.inbox.put_nowait(chunk)

    def stop(self, stop: Any) -> None:
        """The front's `stop` (a `payloads.Stop`): queued after the audio."""
        if not self.closed:
            self.closed = True
            self.inbox.put_nowait(stop)

    def fail(self, err: SessionError) -> None:
        """End the session with `err` (a bad `stop`, say); no more input is taken."""
        self.closed = True
        super().fail(err)

    def cancel(self) -> None:
        self.closed = True
        super().cancel()
