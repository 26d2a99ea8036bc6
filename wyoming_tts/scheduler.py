"""Fair synthesis scheduling: a worker pool that serves the lowest piece number first.

Every request submits its pieces one at a time, numbered 0, 1, 2, ... Workers
take the job with the lowest number (then the oldest), so the first piece of a
new request overtakes the tenth piece of a long one: a long text cannot starve
others, and pieces of concurrent requests interleave round-robin.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class FairExecutor:
    def __init__(self, workers: int, name: str = "tts-synth") -> None:
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}") for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: int, fn: Callable[..., Any], *args: Any) -> Future:
        """Run `fn(*args)` on a worker; lower `priority` runs first, FIFO among equals."""
        future: Future = Future()
        if self._closed:
            future.cancel()
            return future
        self._jobs.put((priority, next(self._order), future, fn, args))
        return future

    def shutdown(self) -> None:
        """Cancel what has not started; workers end after their current job (joined at exit)."""
        self._closed = True
        while True:
            try:
                _prio, _seq, future, _fn, _args = self._jobs.get_nowait()
            except queue.Empty:
                break
            if future is not None:
                future.cancel()
        for _ in self._threads:
            self._jobs.put((float("inf"), next(self._order), None, None, ()))

    def _work(self) -> None:
        while True:
            _prio, _seq, future, fn, args = self._jobs.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():  # its client went away meanwhile
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # noqa: BLE001 - handed to the awaiting request
                future.set_exception(err)
