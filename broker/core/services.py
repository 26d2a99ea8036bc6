"""The Wyoming services the bridge can use, their health, and who gets the next request.

Services come from the command line (`--stt`, `--tts`) or from zeroconf. Each is
described on arrival and re-checked periodically; a request goes to the least
busy healthy service of its kind, and one that fails is marked down and
re-checked at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from wyoming.info import Info

from voice_common.voice_events import ProfileSupport, profile_support

from .metrics import BrokerMetrics
from .wyoming_client import ServiceFailure, describe_event, parse_info

_LOGGER = logging.getLogger(__name__)
#: Seconds between checks of a service that is down.
DOWN_RETRY_S = 2.0

KINDS = ("asr", "tts")


@dataclass(eq=False)
class Service:
    uri: str
    source: str  # "static" or "zeroconf"
    name: str
    expect: str | None = None  # kind named on the command line
    kinds: set[str] = field(default_factory=set)
    healthy: bool = False
    active: int = 0
    last_used: int = 0
    #: The voice profiles it keeps (None: it keeps none, voice-create goes elsewhere).
    profiles: ProfileSupport | None = None
    streaming: dict[str, bool] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # models / voices per kind
    #: Per kind, what each model / voice is: name, languages, backend (the program serving it).
    details: dict[str, list[dict]] = field(default_factory=dict)

    def update(self, info: Info) -> None:
        self.kinds = {kind for kind in KINDS if any(p.installed for p in getattr(info, kind))}
        self.streaming = {
            "asr": any(p.supports_transcript_streaming for p in info.asr if p.installed),
            "tts": any(p.supports_synthesize_streaming for p in info.tts if p.installed),
        }
        self.names = {
            "asr": [m.name for p in info.asr for m in p.models if m.installed],
            "tts": [v.name for p in info.tts for v in p.voices if v.installed],
        }
        self.details = {
            "asr": [{"name": m.name, "languages": list(m.languages), "backend": p.name}
                    for p in info.asr for m in p.models if m.installed],
            "tts": [{"name": v.name, "languages": list(v.languages), "backend": p.name}
                    for p in info.tts for v in p.voices if v.installed],
        }

    def state(self) -> tuple:
        """What `voice/info` shows of the service: a change is published (a voice profile
        created or deleted changes the voices)."""
        return (self.healthy, frozenset(self.kinds), repr(self.names), self.profiles)

    def summary(self) -> dict:
        return {
            "uri": self.uri, "name": self.name, "source": self.source, "kinds": sorted(self.kinds),
            "healthy": self.healthy,
            "streaming": sorted(k for k, v in self.streaming.items() if v and k in self.kinds),
            "models": self.names.get("asr", []) if "asr" in self.kinds else [],
            "voices": self.names.get("tts", []) if "tts" in self.kinds else [],
            "profiles": None if self.profiles is None else {
                "voices": list(self.profiles.voices), "editable": self.profiles.editable},
        }


class ServicePool:
    def __init__(self, connect_timeout: float, metrics: BrokerMetrics | None = None) -> None:
        self._connect_timeout = connect_timeout
        self._metrics = metrics
        self._services: dict[str, Service] = {}
        self._uses = itertools.count(1)
        self._checks: set[asyncio.Task] = set()
        #: Set whenever the set of services or their health changes.
        self.changed = asyncio.Event()

    @property
    def services(self) -> list[Service]:
        return list(self._services.values())

    def add(self, uri: str, source: str, name: str | None = None, expect: str | None = None) -> Service:
        service = self._services.get(uri)
        if service is None:
            service = Service(uri, source, name or uri, expect)
            self._services[uri] = service
            _LOGGER.info("service added: %s (%s)", service.name, uri)
        self.recheck(service)
        return service

    def remove(self, uri: str) -> None:
        if self._services.pop(uri, None) is not None:
            _LOGGER.info("service removed: %s", uri)
            self._changed()

    async def check(self, service: Service) -> None:
        was = service.state()
        try:
            event = await describe_event(service.uri, self._connect_timeout)
            info = parse_info(service.uri, event)
        except ServiceFailure as err:
            if service.healthy:
                _LOGGER.warning("service %s is down: %s", service.name, err)
            service.healthy = False
        else:
            service.update(info)
            service.profiles = profile_support(event) if "tts" in service.kinds else None
            service.healthy = bool(service.kinds)
            if service.expect and service.expect not in service.kinds:
                _LOGGER.warning("%s was given as %s service but offers %s", service.uri,
                                service.expect, sorted(service.kinds) or "nothing")
            if not was[0] and service.healthy:
                _LOGGER.info("service %s is up (%s)", service.name, ", ".join(sorted(service.kinds)))
        if was != service.state():
            self._changed()

    def recheck(self, service: Service) -> None:
        """Describe `service` again in the background."""
        task = asyncio.ensure_future(self.check(service))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def run_health_checks(self, health_interval: float) -> None:
        """Describe every service each `health_interval` s, and the ones that are down every
        DOWN_RETRY_S s: a service still loading its model is marked up once it answers."""
        since_full = 0.0
        while True:
            step = min(health_interval, DOWN_RETRY_S)
            await asyncio.sleep(step)
            since_full += step
            if since_full >= health_interval:
                since_full, due = 0.0, self.services
            else:
                due = [s for s in self.services if not s.healthy]
            await asyncio.gather(*(self.check(s) for s in due), return_exceptions=True)

    def candidates(self, kind: str) -> list[Service]:
        """Services to try for `kind`: healthy ones least busy first, then the ones down."""
        known = [s for s in self._services.values() if kind in s.kinds or (s.expect == kind and not s.kinds)]
        healthy = sorted((s for s in known if s.healthy), key=lambda s: (s.active, s.last_used))
        down = [s for s in known if not s.healthy]
        return healthy + down

    @contextlib.asynccontextmanager
    async def lease(self, service: Service) -> AsyncIterator[Service]:
        """Count `service` busy while a request uses it."""
        service.active += 1
        service.last_used = next(self._uses)
        try:
            yield service
        finally:
            service.active -= 1

    def mark_failed(self, service: Service, err: Exception) -> None:
        _LOGGER.warning("service %s failed: %s", service.name, err)
        if service.healthy:
            service.healthy = False
            self._changed()
        self.recheck(service)

    async def close(self) -> None:
        for task in list(self._checks):
            task.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)

    def _changed(self) -> None:
        if self._metrics is not None:
            for kind in KINDS:
                for healthy in (True, False):
                    count = sum(1 for s in self._services.values() if kind in s.kinds and s.healthy == healthy)
                    self._metrics.services.labels(kind, str(healthy).lower()).set(count)
        self.changed.set()
