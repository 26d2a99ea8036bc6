"""An LRU cache of synthesized audio, bounded in bytes.

Assistants repeat themselves ("Turned on the light."), so the PCM of each
piece is kept, keyed by everything that changes the sound. Worker threads use
it concurrently, hence the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class AudioCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self.size = 0
        self._items: OrderedDict[Hashable, tuple[int, bytes, float | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[int, bytes, float | None] | None:
        """(rate, pcm, peak the backend scaled it from) or None; a hit becomes the most
        recently used entry."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: Hashable, rate: int, pcm: bytes, peak: float | None = None) -> None:
        if len(pcm) > self.max_bytes:  # also covers a disabled cache (0 bytes)
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= len(old[1])
            self._items[key] = (rate, pcm, peak)
            self.size += len(pcm)
            while self.size > self.max_bytes:
                _key, (_rate, evicted, _peak) = self._items.popitem(last=False)
                self.size -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)
