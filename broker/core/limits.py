"""Per-key limits of the API: requests per minute, audio seconds per hour, streams at once.

Pure logic on an injectable clock (`time.monotonic` by default; tests pass a fake one), so
the front decides what to do with a refusal: answer 429 with `Retry-After:
retry_after_header(seconds)`, or close a WebSocket with an error.

Both rates are the generic cell rate algorithm (GCRA), a token bucket that keeps one number,
the "theoretical arrival time" `tat`: each unit of cost moves it `period / amount` seconds
into the future, and a request is admitted while `tat` stays within one `period` of now. So
a key may burst its whole allowance at once, then gets one unit back every `period /
amount` seconds, and a refusal knows exactly when the request would pass (`retry_after`).
With whole-second clocks and costs the arithmetic is exact (no refill rounding).

Audio is charged in one of two ways: `admit_audio(seconds)` before work whose length is
known (an uploaded file), refused when over; `charge_audio(seconds)` after the fact, for
audio that streams in, which may run the key into debt that its next requests wait out.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .keys import Key, KeyLimits

Clock = Callable[[], float]


def retry_after_header(seconds: float) -> str:
    """The `Retry-After` value for a refusal: whole seconds, rounded up, at least 1."""
    if math.isinf(seconds):
        raise ValueError("a request that can never pass has no Retry-After (answer 413 instead)")
    return str(max(1, math.ceil(seconds - 1e-9)))


class RateLimit:
    """At most `amount` units per `period` seconds (bursts up to `amount`)."""

    def __init__(self, amount: float, period: float, clock: Clock = time.monotonic) -> None:
        if not (amount > 0 and period > 0):
            raise ValueError(f"a rate needs amount and period above 0, got {amount} per {period}")
        self.amount = amount
        self.period = period
        self._interval = period / amount
        self._clock = clock
        self._tat = -math.inf
        self._lock = threading.Lock()

    def _retry_after(self, cost: float, now: float) -> tuple[float | None, float]:
        """(None or the seconds until `cost` fits, the new arrival time if it is taken now)."""
        if cost * self._interval > self.period:
            return math.inf, self._tat  # more than a whole period's allowance: never fits
        tat = max(self._tat, now) + cost * self._interval
        allowed_from = tat - self.period
        return (allowed_from - now if allowed_from > now else None), tat

    def take(self, cost: float = 1.0) -> float | None:
        """Admit and charge `cost` (None), or return the seconds until it would be admitted
        (math.inf: more than the whole allowance, it never will be); a refusal charges nothing."""
        with self._lock:
            retry_after, tat = self._retry_after(cost, self._clock())
            if retry_after is None:
                self._tat = tat
            return retry_after

    def peek(self, cost: float = 1.0) -> float | None:
        """What `take(cost)` would answer now, charging nothing."""
        with self._lock:
            return self._retry_after(cost, self._clock())[0]

    def charge(self, cost: float) -> None:
        """Charge `cost` whatever the balance (used work: streamed audio); it may leave the
        key in debt, which its next `take` waits out."""
        with self._lock:
            self._tat = max(self._tat, self._clock()) + cost * self._interval


class StreamLimitReached(Exception):
    """A key already has as many streams open as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} streams at once for this key")
        self.limit = limit


class StreamSlots:
    """Streams open at once for one key: at most `limit` (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"a stream limit must be at least 1, got {limit}")
        self.limit = limit
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_acquire(self) -> bool:
        with self._lock:
            if self.limit is not None and self._in_use >= self.limit:
                return False
            self._in_use += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self._in_use == 0:
                raise RuntimeError("released a stream slot that was not held")
            self._in_use -= 1

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the `with` block; raises StreamLimitReached when none is free."""
        if not self.try_acquire():
            assert self.limit is not None  # without a limit there is always a slot
            raise StreamLimitReached(self.limit)
        try:
            yield
        finally:
            self.release()


@dataclass(frozen=True)
class KeyLimiter:
    """One key's limiters (a rate that the key has no limit for is None)."""

    limits: KeyLimits
    requests: RateLimit | None
    audio: RateLimit | None
    streams: StreamSlots

    def admit_request(self) -> float | None:
        """Count one API call: None when admitted, else the seconds to wait (429)."""
        return self.requests.take() if self.requests else None

    def admit_audio(self, seconds: float) -> float | None:
        """Charge `seconds` of audio before the work (its length is known): None when
        admitted, else the seconds to wait (math.inf: more than an hour's allowance, 413)."""
        return self.audio.take(seconds) if self.audio else None

    def charge_audio(self, seconds: float) -> None:
        """Charge `seconds` of audio already processed (a stream), admitted or not."""
        if self.audio:
            self.audio.charge(seconds)


class KeyLimiters:
    """The limiters of every key seen, by key id (a key name can be reused after a revoke).

    `default_streams` is the streams cap of a key without its own (the front's option);
    `for_key` rebuilds a key's limiters if its limits differ from what they were built with.
    """

    def __init__(self, default_streams: int | None = None, clock: Clock = time.monotonic) -> None:
        self._default_streams = default_streams
        self._clock = clock
        self._by_id: dict[int, KeyLimiter] = {}
        self._lock = threading.Lock()

    def for_key(self, key: Key) -> KeyLimiter:
        with self._lock:
            limiter = self._by_id.get(key.id)
            if limiter is None or limiter.limits != key.limits:
                limiter = self._build(key.limits)
                self._by_id[key.id] = limiter
            return limiter

    def _build(self, limits: KeyLimits) -> KeyLimiter:
        rpm, audio = limits.requests_per_minute, limits.audio_seconds_per_hour
        return KeyLimiter(
            limits=limits,
            requests=RateLimit(rpm, 60.0, self._clock) if rpm else None,
            audio=RateLimit(audio, 3600.0, self._clock) if audio else None,
            streams=StreamSlots(limits.streams if limits.streams is not None else self._default_streams),
        )
