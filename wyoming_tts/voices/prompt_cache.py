"""Clone prompts, computed once per profile and backend, kept in an LRU and on disk.

A cloning backend turns a profile (clip + transcript) into a prompt: for Qwen3-TTS the
speaker embedding and the reference clip's codec codes. That costs an encoder pass, so
the result is kept in memory (LRU bounded in entries and bytes, with hit, miss and
eviction counters) and saved beside the profile as `<kind>.prompt` with a small
`<kind>.prompt.json` naming the profile fingerprint it was made from: after a restart the
file is read instead of running the encoder again, and a changed clip or transcript (a
new fingerprint) makes it stale, so it is recomputed and rewritten.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from .profiles import VoiceProfile

_LOGGER = logging.getLogger(__name__)


class PromptEncoder(Protocol):
    """What a cloning backend offers the cache."""

    #: Names the prompt format and the model it belongs to (a file name part: [a-z0-9_-]).
    prompt_kind: str

    def encode_prompt(self, profile: VoiceProfile) -> Any:
        """Blocking: the prompt of `profile` (the expensive encoder pass)."""

    def prompt_nbytes(self, prompt: Any) -> int: ...

    def save_prompt(self, prompt: Any, path: Path) -> None: ...

    def load_prompt(self, path: Path) -> Any: ...


class PromptMetrics:
    def __init__(self, namespace: str, registry) -> None:
        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, namespace=namespace, registry=registry)

        self.hits = counter("voice_prompt_cache_hits", "Clone prompts served from memory")
        self.misses = counter("voice_prompt_cache_misses", "Clone prompts not in memory (read from disk or encoded)")
        self.evictions = counter("voice_prompt_cache_evictions", "Clone prompts dropped to stay within the bounds")
        self.loads = counter("voice_prompt_loads", "Clone prompts read from beside their profile")
        self.encodes = counter("voice_prompt_encodes", "Clone prompts computed by a backend's encoder")
        self.bytes = Gauge("voice_prompt_cache_bytes", "Bytes of clone prompts in memory",
                           namespace=namespace, registry=registry)


class PromptCache:
    def __init__(self, max_entries: int, max_bytes: int, metrics: PromptMetrics) -> None:
        self.max_entries = max(0, max_entries)
        self.max_bytes = max(0, max_bytes)
        self.metrics = metrics
        self.size = 0
        self._items: OrderedDict[tuple[str, str, str], tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        #: One lock per (kind, profile), so two sessions wanting a new prompt encode it once.
        self._building: dict[tuple[str, str], threading.Lock] = {}

    def prompt(self, profile: VoiceProfile, encoder: PromptEncoder) -> Any:
        """Blocking: the prompt of `profile` for `encoder`, from memory, disk or the encoder."""
        key = (encoder.prompt_kind, profile.name, profile.fingerprint)
        found = self._get(key)
        if found is not None:
            return found
        with self._lock:
            building = self._building.setdefault(key[:2], threading.Lock())
        with building:
            found = self._get(key, count=False)  # another session may have made it meanwhile
            if found is not None:
                return found
            self.metrics.misses.inc()
            prompt = self._load(profile, encoder) if self._fresh_on_disk(profile, encoder) else None
            if prompt is None:
                prompt = encoder.encode_prompt(profile)
                self.metrics.encodes.inc()
                self._save(profile, encoder, prompt)
            else:
                self.metrics.loads.inc()
            self._put(key, prompt, encoder.prompt_nbytes(prompt))
            return prompt

    def forget(self, name: str) -> None:
        """Drop every prompt of a profile (deleted)."""
        with self._lock:
            for key in [k for k in self._items if k[1] == name]:
                _prompt, size = self._items.pop(key)
                self.size -= size
            self.metrics.bytes.set(self.size)

    def __len__(self) -> int:
        return len(self._items)

    # -- memory --------------------------------------------------------------
    def _get(self, key, count: bool = True) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
        if count:
            self.metrics.hits.inc()
        return item[0]

    def _put(self, key, prompt: Any, size: int) -> None:
        if not self.max_entries or size > self.max_bytes:
            return
        with self._lock:
            for stale in [k for k in self._items if k[:2] == key[:2] and k != key]:  # an older fingerprint
                self.size -= self._items.pop(stale)[1]
            self._items[key] = (prompt, size)
            self.size += size
            while len(self._items) > self.max_entries or self.size > self.max_bytes:
                _key, (_prompt, evicted) = self._items.popitem(last=False)
                self.size -= evicted
                self.metrics.evictions.inc()
            self.metrics.bytes.set(self.size)

    # -- disk ------------------------------------------------------------------
    @staticmethod
    def _paths(profile: VoiceProfile, encoder: PromptEncoder) -> tuple[Path, Path]:
        path = profile.folder / f"{encoder.prompt_kind}.prompt"
        return path, path.with_name(path.name + ".json")

    def _fresh_on_disk(self, profile: VoiceProfile, encoder: PromptEncoder) -> bool:
        path, meta = self._paths(profile, encoder)
        try:
            return path.is_file() and json.loads(meta.read_text()).get("fingerprint") == profile.fingerprint
        except (OSError, ValueError, AttributeError):
            return False

    def _load(self, profile: VoiceProfile, encoder: PromptEncoder) -> Any:
        path, _meta = self._paths(profile, encoder)
        try:
            return encoder.load_prompt(path)
        except Exception as err:  # noqa: BLE001 - a damaged file is recomputed, not fatal
            _LOGGER.warning("voice %s: saved prompt %s unreadable (%s); recomputing", profile.name, path, err)
            return None

    def _save(self, profile: VoiceProfile, encoder: PromptEncoder, prompt: Any) -> None:
        path, meta = self._paths(profile, encoder)
        try:
            if not profile.folder.is_dir():  # deleted meanwhile
                return
            tmp = path.with_name(path.name + ".tmp")
            encoder.save_prompt(prompt, tmp)
            tmp.replace(path)
            meta.write_text(json.dumps({"fingerprint": profile.fingerprint, "kind": encoder.prompt_kind}) + "\n")
        except OSError as err:
            _LOGGER.warning("voice %s: prompt not saved (%s); it will be recomputed after a restart",
                            profile.name, err)
