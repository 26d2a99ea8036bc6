"""A Wyoming client for the bridge: wyoming's AsyncTcpClient with bounded, timed reads.

Every transport problem (refused, reset, stalled, garbage) surfaces as one
exception, `ServiceFailure`, so sessions can fail over to another service.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info

from voice_common.protocol import ClientGone, ProtocolError, read_event, write_event

MAX_FRAME_BYTES = 4 * 1024 * 1024


class ServiceFailure(Exception):
    """The service cannot be reached or broke the connection/protocol."""


class ServiceClient(AsyncTcpClient):
    """One connection to a Wyoming service (use as `async with`)."""

    def __init__(self, uri: str, *, connect_timeout: float, read_timeout: float) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "tcp" or parsed.hostname is None or parsed.port is None:
            raise ValueError(f"not a tcp://HOST:PORT URI: {uri}")
        super().__init__(parsed.hostname, parsed.port, connect_timeout=connect_timeout,
                         read_timeout=read_timeout)
        self.uri = uri

    async def connect(self) -> None:
        try:
            await super().connect()
        except (TimeoutError, OSError) as err:
            raise ServiceFailure(f"cannot connect to {self.uri}: {err or type(err).__name__}") from err

    async def disconnect(self) -> None:
        try:
            await asyncio.wait_for(super().disconnect(), 1)
        except (TimeoutError, OSError):
            pass

    async def read_event(self, *, bounded: bool = True) -> Event:
        """The next event; raises ServiceFailure on EOF, stalls and bad frames.

        With `bounded=False` the wait for an event to begin has no limit (a frame that
        stalls once begun still fails): for callers that bound the wait themselves.
        """
        assert self._reader is not None, "not connected"
        try:
            event = await read_event(
                self._reader, max_frame_bytes=MAX_FRAME_BYTES,
                idle_timeout=self.read_timeout if bounded else None,
                read_timeout=self.read_timeout or 10.0,
            )
        except (ProtocolError, ClientGone) as err:
            raise ServiceFailure(f"{self.uri}: {err}") from err
        if event is None:
            raise ServiceFailure(f"{self.uri} closed the connection")
        return event

    async def write_event(self, event: Event) -> None:
        if self._writer is None:
            raise ServiceFailure(f"{self.uri}: not connected")
        try:
            await write_event(event, self._writer, self.read_timeout or 10.0)
        except ClientGone as err:
            raise ServiceFailure(f"{self.uri}: {err}") from err


async def describe(uri: str, timeout: float) -> Info:
    """Ask a service what it offers; raises ServiceFailure."""
    return parse_info(uri, await describe_event(uri, timeout))


async def describe_event(uri: str, timeout: float) -> Event:
    """The service's `info` event as sent, with the keys `Info` leaves out (voice profiles)."""
    async with ServiceClient(uri, connect_timeout=timeout, read_timeout=timeout) as client:
        await client.write_event(Describe().event())
        while True:
            event = await client.read_event()
            if Info.is_type(event.type):
                return event


def parse_info(uri: str, event: Event) -> Info:
    try:
        return Info.from_event(event)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ServiceFailure(f"{uri} sent an unreadable info event: {err}") from err


class BackendBusy(ServiceFailure):
    """The service answered with an `error` event of code `busy`: try another one."""
