"""What the web console shows, read from the bridge's own state: services, sessions and metrics.

`bridge_status(core)` is the body of `GET /api/v1/status`. Every number comes from the
core (its service pool, its sessions, its error ring) or from the bridge's Prometheus
registry, read through `registry.collect()` like a scrape would: the console draws its
charts from the differences between two of these answers, so nothing here is made up
or smoothed. Latency quantiles are estimated from the histogram buckets the way
Prometheus' `histogram_quantile` does (linear inside a bucket).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry

from voice_common import __version__

from ..core.core import Core
from ..core.stt import SttSession

#: Newest recent errors sent with each status.
STATUS_ERRORS = 20
#: Backends whose requests and latency are shown.
BACKENDS = ("stt", "tts")


def _samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the registry by sample name (`voice_broker_requests_total`, ...)."""
    found: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), float(sample.value)))
    return found


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative (upper bound, count) buckets, None without observations.

    As Prometheus estimates it: linear within the bucket the rank falls in; a rank in the
    +Inf bucket gives the highest finite bound."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _latency(samples: dict[str, list[tuple[dict[str, str], float]]], backend: str) -> dict[str, Any]:
    buckets = [(float(labels["le"]), value) for labels, value in samples.get("voice_broker_latency_seconds_bucket", [])
               if labels.get("backend") == backend]
    count = _value(samples, "voice_broker_latency_seconds_count", backend=backend)
    total = _value(samples, "voice_broker_latency_seconds_sum", backend=backend)
    return {"count": count, "sum_s": total, "p50_s": histogram_quantile(0.5, buckets),
            "p95_s": histogram_quantile(0.95, buckets)}


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    return sum(value for have, value in samples.get(name, []) if all(have.get(k) == v for k, v in labels.items()))


def bridge_status(core: Core, *, started: float) -> dict[str, Any]:
    """The JSON of `GET /api/v1/status` (see docs/http.md)."""
    samples = _samples(core.metrics.registry)
    config = core.config
    sessions = core.sessions()
    errors = {labels["code"]: value for labels, value in samples.get("voice_broker_errors_total", [])}
    return {
        "version": __version__,
        "time": time.time(),
        "uptime_s": time.monotonic() - started,
        "ready": bool(_value(samples, "voice_broker_ready")),
        "mqtt": {"enabled": config.mqtt, "connected": bool(_value(samples, "voice_broker_mqtt_connected"))},
        "services": [{**service.summary(), "active": service.active} for service in core.pool.services],
        "sessions": {
            "active": len(sessions), "max": config.max_sessions,
            "stt": sum(1 for s in sessions if isinstance(s, SttSession)),
            "tts": sum(1 for s in sessions if not isinstance(s, SttSession)),
        },
        "requests": {backend: _value(samples, "voice_broker_requests_total", backend=backend) for backend in BACKENDS},
        "audio_seconds": {backend: _value(samples, "voice_broker_audio_seconds_total", backend=backend)
                          for backend in BACKENDS},
        "latency": {backend: _latency(samples, backend) for backend in BACKENDS},
        "http_requests": _value(samples, "voice_broker_http_requests_total"),
        "errors": {"by_code": errors, "total": core.recent_errors.total,
                   "recent": [error.public() for error in core.recent_errors.list(STATUS_ERRORS)]},
    }
