"""The core every front drives: admits sessions, runs each as its own task, ends them.

Per site there is at most one STT, one TTS and one voice-profile session, in total at most
`--max-sessions`; more is refused with `busy`. A session without a site (an API
request) takes only a global slot: no per-site exclusivity and no site settings.
Each session reports to its front through a `Sink` of typed results; the core knows
no transport, so a front's own troubles (an MQTT outage) reach it as `interrupt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from voice_common.errors import MqttCode
from voice_common.server import SessionSlots

from ..config import BridgeConfig
from .errors import SessionError
from .metrics import BrokerMetrics
from .payloads import SiteSettings, SttRequest, Voice, VoiceProfileRequest, check_text
from .recent_errors import RecentErrors
from .results import Failure, Sink, SinkFailed
from .services import ServicePool
from .session import Deps, Session
from .settings import SettingsStore
from .stt import SttSession
from .tts import TtsSession
from .voices import VoiceCreateSession, VoiceDeleteSession, VoiceSession

_LOGGER = logging.getLogger(__name__)

#: Seconds a sink may take for the `interrupted` Failure at shutdown.
SHUTDOWN_REPORT_SECONDS = 2.0

SiteWatcher = Callable[[str], Awaitable[None]]
#: Awaited with the site and whether it was known before, after its settings changed.
SettingsWatcher = Callable[[str, bool], Awaitable[None]]


class Core:
    """Sessions, services, settings and metrics, shared by every front of the process."""

    def __init__(self, config: BridgeConfig, pool: ServicePool, store: SettingsStore,
                 metrics: BrokerMetrics) -> None:
        self.config = config
        self.pool = pool
        self.store = store
        self.metrics = metrics
        self.deps = Deps(pool, config, metrics)
        self.slots = SessionSlots(config.max_sessions)
        self._stt: dict[str, SttSession] = {}
        self._tts: dict[str, TtsSession] = {}
        self._voice: dict[str, VoiceSession] = {}
        self._sessions: set[Session] = set()
        self._reports: set[asyncio.Task] = set()
        #: Awaited with the site when a site's session starts and after it ended (a front
        #: publishes the site's busy state). Errors are logged, never the session's.
        self.site_watchers: list[SiteWatcher] = []
        #: Awaited after `set_site` stored a site's settings (the MQTT front publishes them
        #: retained); errors are logged, the settings stay stored.
        self.settings_watchers: list[SettingsWatcher] = []
        #: The last errors answered (codes and the bridge's own texts; no content, no keys).
        self.recent_errors = RecentErrors()

    # -- sites -------------------------------------------------------------------
    def sites(self) -> list[str]:
        """The known sites: --sites and those with stored settings."""
        return sorted(set(self.config.sites) | set(self.store.sites))

    def mode(self, site: str) -> str:
        return self.store.get(site).mode or self.config.default_mode

    def busy(self, site: str) -> bool:
        """True while the site has an STT or TTS session (a voice-profile edit is not speech)."""
        return site in self._stt or site in self._tts

    async def set_site(self, site: str, update: dict) -> SiteSettings:
        """Merge `update` into the site's stored settings (checked by SiteSettings.merged, as
        MQTT `settings/set` is), then tell the settings watchers. Raises SessionError."""
        known = site in self.sites()
        try:
            settings = self.store.update(site, update, self.config.max_sites)
        except SessionError as err:
            self.count_error(err, backend="settings", site=site)
            raise
        _LOGGER.info("site %s settings: %s", site, settings)
        for watcher in self.settings_watchers:
            try:
                await watcher(site, known)
            except Exception:
                _LOGGER.exception("settings watcher failed for site %s", site)
        return settings

    def count_error(self, err: SessionError, *, backend: str = "", site: str | None = None) -> None:
        """Count an error answered to a requester (metrics) and keep it in `recent_errors`."""
        self.metrics.errors.labels(err.code).inc()
        self.recent_errors.add(err.code, err.text, backend=backend, site=site)

    def stt_at(self, site: str) -> SttSession | None:
        return self._stt.get(site)

    def tts_at(self, site: str) -> TtsSession | None:
        return self._tts.get(site)

    def voice_at(self, site: str) -> VoiceSession | None:
        return self._voice.get(site)

    def sessions(self) -> list[Session]:
        """Every session in progress, with or without a site."""
        return list(self._sessions)

    # -- opening -----------------------------------------------------------------
    def open_stt(self, request: SttRequest, sink: Sink, *, site: str | None = None, ident: str = "") -> SttSession:
        """Start an STT session; raises SessionError when refused (nothing was sent to `sink`)."""
        if site is not None and request.language is None:
            request = replace(request, language=self.store.get(site).language)
        self._admit(site, self._stt, "stt")
        session = SttSession(site, ident, sink, self.deps, request)
        self._start(session, self._stt)
        return session

    def open_tts(self, voice: Voice, sink: Sink, *, text: str | None = None, site: str | None = None,
                 ident: str = "", deadline: float | None = None) -> TtsSession:
        """Start a TTS session of `text`, or of text streamed in with `add_text`/`end` when None.

        `deadline` (time.monotonic()): no audio is started after it (`expired`).
        Raises SessionError when refused (nothing was sent to `sink`).
        """
        try:
            if text is not None:
                check_text(text, self.config.max_text_chars)
        except SessionError as err:
            self.count_error(err, backend="tts", site=site)
            raise
        if site is not None:
            voice = voice.over(self.store.get(site).voice_defaults())
        self._admit(site, self._tts, "tts")
        session = TtsSession(site, ident, sink, self.deps, voice, text, deadline)
        self._start(session, self._tts)
        return session

    def open_voice_create(self, request: VoiceProfileRequest, sink: Sink, *, site: str | None = None,
                          ident: str = "") -> VoiceCreateSession:
        """Start creating a voice profile (its clip follows through `feed`, then `stop`).
        Raises SessionError when refused, before any audio is taken (no service keeps profiles)."""
        session = VoiceCreateSession(site, ident, sink, self.deps, request)
        self._open_voice(session)
        return session

    def open_voice_delete(self, name: str, sink: Sink, *, site: str | None = None,
                          ident: str = "") -> VoiceDeleteSession:
        """Delete the voice profile `name` (checked by the front with `payloads.voice_name`) on
        every TTS service that keeps profiles. Raises SessionError when refused."""
        session = VoiceDeleteSession(site, ident, sink, self.deps, name)
        self._open_voice(session)
        return session

    def _open_voice(self, session: VoiceSession) -> None:
        try:
            session.targets()
        except SessionError as err:
            self.count_error(err, backend="voice", site=session.site)
            raise
        self._admit(session.site, self._voice, "voice")
        self._start(session, self._voice)

    def _admit(self, site: str | None, registry: dict, what: str) -> None:
        try:
            if site is not None:
                mode = self.mode(site)
                if mode == "disabled" or (what == "stt" and mode == "tts_only"):
                    raise SessionError(f"{what.upper()} is disabled at site {site} (mode {mode})", MqttCode.DISABLED)
                if site in registry:
                    raise SessionError(f"site {site} already has a {what.upper()} session", MqttCode.BUSY)
            if not self.slots.try_acquire():
                raise SessionError(f"{self.config.max_sessions} sessions already in progress", MqttCode.BUSY)
        except SessionError as err:
            self.count_error(err, backend=what, site=site)
            raise

    def _start(self, session: Session, registry: dict) -> None:
        if session.site is not None:
            registry[session.site] = session
        self._sessions.add(session)
        session.holds_slot = True
        session.registry = registry
        session.release = lambda: self._release(session)
        self.metrics.active_sessions.inc()
        session.task = asyncio.ensure_future(self._drive(session))

    # -- running -----------------------------------------------------------------
    async def _drive(self, session: Session) -> None:
        await self._site_changed(session.site)
        try:
            await session.run()
        except SessionError as err:
            self.count_error(err, backend=session.backend, site=session.site)
            self._release(session)  # free before the error is out: the next request may follow it at once
            await self._report(session, err)
        except SinkFailed as err:
            _LOGGER.debug("%s", err)
        except asyncio.CancelledError:
            pass  # interrupted (its Failure is sent by `interrupt`) or the core is closing
        except Exception:
            _LOGGER.exception("session %s at site %s failed", session.ident, session.site)
            self._release(session)
            internal = SessionError("internal error in the bridge", MqttCode.BACKEND_ERROR)
            self.recent_errors.add(internal.code, internal.text, backend=session.backend, site=session.site)
            await self._report(session, internal)
        finally:
            self._release(session)
            self._sessions.discard(session)
            await self._site_changed(session.site)

    async def _report(self, session: Session, err: SessionError) -> None:
        """Send a Failure; a sink that cannot take it is left alone (it knows why)."""
        with contextlib.suppress(SinkFailed):
            await session.emit(Failure.of(err))

    async def _site_changed(self, site: str | None) -> None:
        if site is None:
            return
        for watcher in self.site_watchers:
            try:
                await watcher(site)
            except Exception:
                _LOGGER.exception("site watcher failed for site %s", site)

    def _release(self, session: Session) -> None:
        """Free the session's site and slot; idempotent (a later session at the site stays)."""
        if not session.holds_slot:
            return
        session.holds_slot = False
        registry = session.registry
        if session.site is not None and registry.get(session.site) is session:
            del registry[session.site]
        self.slots.release()
        self.metrics.active_sessions.dec()

    # -- ending from outside -----------------------------------------------------
    def interrupt(self, session: Session, reason: str) -> None:
        """End a session cut off by its front (an outage): at once, site and slot freed; it
        gets an `interrupted` Failure with `reason` through its sink. Idempotent."""
        if session.interrupted is not None:
            return
        session.interrupted = reason
        self._release(session)  # at once: the site is free when the front is back
        self.metrics.errors.labels("interrupted").inc()
        self.recent_errors.add(MqttCode.INTERRUPTED, reason, backend=session.backend, site=session.site)
        if session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()
        report = asyncio.ensure_future(self._report(session, SessionError(reason, MqttCode.INTERRUPTED)))
        self._reports.add(report)
        report.add_done_callback(self._reports.discard)

    async def close(self, reason: str = "the bridge is shutting down") -> None:
        """End every session with `interrupted` (shutdown); each sink gets at most
        SHUTDOWN_REPORT_SECONDS for it."""
        sessions = [s for s in self.sessions() if s.interrupted is None]  # the others are reported
        for session in sessions:
            session.interrupted = reason
            if session.task is not None:
                session.task.cancel()
        await asyncio.gather(*(s.task for s in sessions if s.task is not None), return_exceptions=True)
        for session in sessions:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(self._report(session, SessionError(
                    reason, MqttCode.INTERRUPTED)), SHUTDOWN_REPORT_SECONDS)
        await asyncio.gather(*self._reports, return_exceptions=True)
