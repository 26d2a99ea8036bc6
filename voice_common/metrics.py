"""Prometheus metrics shared by the services (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Requests, errors by code, audio seconds, latency and active sessions, per backend."""

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.requests = Counter("requests", "Requests served", ["backend"], namespace=namespace, registry=reg)
        self.errors = Counter("errors", "Error events sent, by code", ["code"], namespace=namespace, registry=reg)
        self.audio_seconds = Counter(
            "audio_seconds", "Seconds of audio processed", ["backend"], namespace=namespace, registry=reg
        )
        self.latency = Histogram(
            "latency_seconds", "Request latency (end of input to result / first audio)",
            ["backend"], namespace=namespace, registry=reg, buckets=LATENCY_BUCKETS,
        )
        self.active_sessions = Gauge("active_sessions", "Sessions in progress", namespace=namespace, registry=reg)
        self.ready = Gauge("ready", "1 once the models are loaded", namespace=namespace, registry=reg)
