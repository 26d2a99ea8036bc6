"""TTS metrics: the shared ServiceMetrics plus per-backend synthesis and cache counters."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from voice_common.metrics import LATENCY_BUCKETS, ServiceMetrics

from .voices.prompt_cache import PromptMetrics


class TtsMetrics(ServiceMetrics):
    """`requests`/`latency` (time to first audio) come from ServiceMetrics, labelled by backend."""

    def __init__(self, namespace: str = "wyoming_tts") -> None:
        super().__init__(namespace)
        reg = self.registry
        self.failures = Counter(
            "backend_failures", "Backend load or synthesis failures (the next backend may serve)",
            ["backend"], namespace=namespace, registry=reg,
        )
        self.characters = Counter(
            "characters", "Characters of text synthesized", ["backend"], namespace=namespace, registry=reg
        )
        self.synthesis_seconds = Histogram(
            "synthesis_seconds", "Time to synthesize one sentence or piece", ["backend"],
            namespace=namespace, registry=reg, buckets=LATENCY_BUCKETS,
        )
        self.cache_hits = Counter("cache_hits", "Pieces served from the audio cache", namespace=namespace, registry=reg)
        self.cache_misses = Counter("cache_misses", "Pieces not in the audio cache", namespace=namespace, registry=reg)
        self.cache_bytes = Gauge("cache_bytes", "Bytes of audio in the cache", namespace=namespace, registry=reg)
        self.prompts = PromptMetrics(namespace, reg)
        self.cancelled = Counter(
            "cancelled", "Requests abandoned because the client went away", namespace=namespace, registry=reg
        )
