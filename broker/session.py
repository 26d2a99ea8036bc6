"""What STT and TTS sessions share: an inbox fed by the dispatcher, timeouts, failover.

The dispatcher never blocks on a session: it validates a message and puts it in
the session's inbox (bounded by the byte/length caps checked before queueing);
the session's own task does the slow work and publishes its results.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

from .config import Limits
from .metrics import BrokerMetrics
from .replies import Replies, ReplyTo, SessionError
from .services import Service, ServicePool
from .topics import Topics
from .wyoming_client import BackendBusy, ServiceFailure

T = TypeVar("T")

#: What a Wyoming service's own error codes mean for the requester.
_PASSED_ON = {"invalid_format", "too_large", "timeout"}


@dataclass(frozen=True)
class Deps:
    """The bridge parts a session uses."""

    pool: ServicePool
    replies: Replies
    limits: Limits
    metrics: BrokerMetrics
    topics: Topics


class Cancel:
    """Inbox item: the requester cancelled."""


def backend_error(code: str | None, text: str) -> SessionError:
    """Map a Wyoming `error` event from a service to the error the requester gets."""
    if code in _PASSED_ON:
        return SessionError(code, text)
    return SessionError("backend_error", f"{code or 'error'}: {text}")


class Session:
    """Base of one request in progress at a site."""

    kind = ""  # "asr" or "tts": the Wyoming service kind
    backend = ""  # metric label: "stt" or "tts"

    def __init__(self, site: str, ident: str, reply: ReplyTo, deps: Deps) -> None:
        self.site = site
        self.ident = ident
        self.reply = reply
        self.deps = deps
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.opened = time.monotonic()
        self.task: asyncio.Task | None = None
        #: Cut off by an MQTT outage or shutdown; its error is already queued.
        self.interrupted = False
        #: Frees the session's site and slot (set by the dispatcher). Called before the
        #: session's last result goes out, so whoever sees that result can start the next
        #: request at once instead of racing the release and getting `busy`.
        self.release: Callable[[], None] = lambda: None

    def cancel(self) -> None:
        self.inbox.put_nowait(Cancel())

    def fail(self, err: SessionError) -> None:
        """End the session with `err` (raised by the session's own task)."""
        self.inbox.put_nowait(err)

    async def next_item(self, timeout: float | None = None) -> Any:
        """The next inbox item; raises SessionError on timeout, cancel or a queued error."""
        if self.interrupted:  # ended from outside (outage, shutdown); normally by cancellation
            raise asyncio.CancelledError
        timeout = self.deps.limits.idle_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):  # unlike wait_for (3.11), never swallows a cancel
                item = await self.inbox.get()
        except TimeoutError:
            raise SessionError("timeout", f"nothing received for {timeout:g} s") from None
        if isinstance(item, Cancel):
            raise SessionError("cancelled", "cancelled by the requester")
        if isinstance(item, SessionError):
            raise item
        return item

    async def failover(self, attempt: Callable[[Service], Awaitable[T]], can_retry: Callable[[], bool]) -> T:
        """Run `attempt` on the least busy service; on failure move on to the next one."""
        pool = self.deps.pool
        tried = busy = 0
        for service in pool.candidates(self.kind):
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
                        raise SessionError("backend_error", f"the {self.backend.upper()} service failed") from err
                    self.deps.metrics.failovers.labels(self.backend).inc()
        what = "speech-to-text" if self.kind == "asr" else "text-to-speech"
        if tried and busy == tried:
            raise SessionError("busy", f"every {what} service is busy")
        if tried:
            raise SessionError("service_unavailable", f"every {what} service is down or busy")
        raise SessionError("service_unavailable", f"no {what} service is available")

    async def run(self) -> Any:
        raise NotImplementedError
