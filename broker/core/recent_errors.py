"""The last errors the bridge answered, kept in memory for the web console.

A bounded ring (oldest dropped first) of what went wrong: when, the error code, the
message the requester got, which backend and site. It never holds a transcript, a text
to speak or a key: the messages are the bridge's own refusal texts (SessionError), and
nothing of a request's content is put in them. Lost at restart, on purpose: the log and
`voice_broker_errors_total` are the lasting record.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass

#: Errors kept; the console shows the newest.
RING_SIZE = 100
#: Longest message kept, in characters (a Wyoming service's error text is passed on).
MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class RecentError:
    at: float  # time.time()
    code: str
    message: str
    backend: str  # "stt", "tts", "settings", ... ("" when unknown)
    site: str | None

    def public(self) -> dict[str, object]:
        return asdict(self)


class RecentErrors:
    """`add` an error, `list` the newest first; at most `size` kept."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._ring: deque[RecentError] = deque(maxlen=size)
        #: Errors added since start, the dropped ones included.
        self.total = 0

    def add(self, code: str, message: str, *, backend: str = "", site: str | None = None) -> None:
        self._ring.append(RecentError(time.time(), str(code), message[:MAX_MESSAGE_CHARS], backend, site))
        self.total += 1

    def list(self, limit: int | None = None) -> list[RecentError]:
        newest = list(reversed(self._ring))
        return newest if limit is None else newest[:limit]
