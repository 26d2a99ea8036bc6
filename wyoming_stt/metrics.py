"""STT metrics: the shared ServiceMetrics plus decode time and speculative hits, per backend."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from voice_common.metrics import LATENCY_BUCKETS, ServiceMetrics


class SttMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("wyoming_stt")
        self.decode_seconds = Histogram(
            "decode_seconds", "Time spent in one backend decode", ["backend"],
            namespace="wyoming_stt", registry=self.registry, buckets=LATENCY_BUCKETS,
        )
        self.speculative_hits = Counter(
            "speculative_hits", "Final transcripts served from a decode made before audio-stop",
            ["backend"], namespace="wyoming_stt", registry=self.registry,
        )
