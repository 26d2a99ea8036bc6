"""Bounded reading and writing of Wyoming events.

`wyoming.event.async_read_event` trusts the peer: it buffers whatever length a
header announces and waits forever for it. Servers facing a LAN need limits, so
this reader refuses oversize frames before reading them, and times out frames
that stall.

Timeouts use `asyncio.timeout()`, never `asyncio.wait_for`: in Python 3.11,
`wait_for` returns the result instead of raising when a cancellation arrives
just as the inner read completes. A client that streams without pause keeps a
read completing at every turn of the loop, so SIGTERM's cancellation was lost
and the connection lived on until the client left.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event, async_write_event

from .errors import WireError, WyomingCode


class ProtocolError(WireError):
    """Ends a Wyoming connection with an `error` event: `text`, then `code`."""

    code: WyomingCode

    def __init__(self, text: str, code: WyomingCode = WyomingCode.BAD_REQUEST) -> None:
        super().__init__(text, code)


class ClientGone(Exception):
    """The peer closed the connection (or it reset)."""


async def read_event(
    reader: asyncio.StreamReader,
    *,
    max_frame_bytes: int,
    idle_timeout: float | None,
    read_timeout: float,
) -> Event | None:
    """Read one event; None on a clean EOF between events.

    Raises ProtocolError for garbage, oversize frames, and stalls.
    """
    # Every read yields once, as wait_for's inner task made it do: a read served from the
    # buffer does not, and a peer that floods events would hold the loop (other clients,
    # SIGTERM) until it paused.
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(idle_timeout):
            line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            return None
        raise ProtocolError("connection closed in the middle of an event header") from err
    except asyncio.LimitOverrunError as err:
        raise ProtocolError("event header line too long", WyomingCode.TOO_LARGE) from err
    except TimeoutError as err:
        raise ProtocolError(f"no event received for {idle_timeout:g} s", WyomingCode.TIMEOUT) from err
    except (ConnectionError, OSError) as err:
        raise ClientGone(str(err)) from err

    header = _parse_json_object(line, "event header")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ProtocolError("event header has no 'type'")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("event 'data' must be an object")

    data_length = _length(header, "data_length")
    payload_length = _length(header, "payload_length")
    if len(line) + data_length + payload_length > max_frame_bytes:
        raise ProtocolError(
            f"event of {len(line) + data_length + payload_length} bytes exceeds the "
            f"limit of {max_frame_bytes} bytes",
            WyomingCode.TOO_LARGE,
        )

    payload = None
    try:
        async with asyncio.timeout(read_timeout):
            if data_length:
                data.update(_parse_json_object(await reader.readexactly(data_length), "event data"))
            if payload_length:
                payload = await reader.readexactly(payload_length)
    except TimeoutError as err:
        raise ProtocolError(
            f"event body did not arrive within {read_timeout:g} s", WyomingCode.TIMEOUT
        ) from err
    except asyncio.IncompleteReadError as err:
        raise ProtocolError("connection closed in the middle of an event body") from err
    except (ConnectionError, OSError) as err:
        raise ClientGone(str(err)) from err

    return Event(type=event_type, data=data, payload=payload)


def _parse_json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"{what} is not valid JSON") from err
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _length(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"'{key}' must be a non-negative integer")
    return value


async def write_event(event: Event, writer: asyncio.StreamWriter, timeout: float = 30.0) -> None:
    """Write one event; a peer that stops reading for `timeout` counts as gone."""
    if writer.is_closing():
        raise ClientGone("connection closed")
    try:
        async with asyncio.timeout(timeout):
            await async_write_event(event, writer)
    except (ConnectionError, OSError, TimeoutError) as err:
        raise ClientGone(str(err) or type(err).__name__) from err
