"""Per-site settings (mode, voice, speaker, speed, language), kept in SQLite.

`settings/set` merges a JSON object into the stored settings (null deletes a
key); the result is published retained on `voice/site/{site}/settings`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from voice_common.errors import MqttCode
from voice_common.language import LANGUAGE_TAG

from ..config import MODES
from ..mqtt.replies import SessionError
from .stt import NAME_RE, optional_str
from .tts import Voice, parse_speed

_LOGGER = logging.getLogger(__name__)

FIELDS = ("mode", "voice", "speaker", "speed", "language")


@dataclass(frozen=True)
class SiteSettings:
    mode: str | None = None
    voice: str | None = None
    speaker: str | None = None
    speed: float | None = None
    language: str | None = None

    def merged(self, update: dict[str, Any]) -> SiteSettings:
        """These settings with `update` applied; raises SessionError('invalid_request')."""
        unknown = sorted(set(update) - set(FIELDS))
        if unknown:
            raise SessionError(f"unknown settings: {', '.join(unknown)}", MqttCode.INVALID_REQUEST)
        mode = update.get("mode", self.mode)
        if mode is not None and mode not in MODES:
            raise SessionError(f"'mode' must be one of {', '.join(MODES)}", MqttCode.INVALID_REQUEST)
        values = {**asdict(self), **update}
        return SiteSettings(
            mode=mode,
            voice=optional_str(values, "voice", NAME_RE),
            speaker=optional_str(values, "speaker", NAME_RE),
            speed=parse_speed(values.get("speed")),
            language=optional_str(values, "language", LANGUAGE_TAG),
        )

    def public(self, default_mode: str) -> dict[str, Any]:
        """The retained JSON: every field, the mode resolved."""
        return {**asdict(replace(self, mode=self.mode or default_mode))}

    def voice_defaults(self) -> Voice:
        return Voice(self.voice, self.speaker, self.language, self.speed)


def _valid_fields(site: str, stored: dict[str, Any]) -> SiteSettings:
    """Stored settings, each field checked as `settings/set` checks it today: one that is no
    longer valid (a speed outside today's range) is dropped, and the site keeps the rest."""
    settings = SiteSettings()
    for key, value in stored.items():
        if key not in FIELDS:
            continue
        try:
            settings = settings.merged({key: value})
        except SessionError as err:
            _LOGGER.warning("site %s: stored %s dropped (%s)", site, key, err.text)
    return settings


class SettingsStore:
    """Settings of every site, in memory and in one SQLite table."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            path = str(Path(path).expanduser())
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS site_settings "
            "(site TEXT PRIMARY KEY, settings TEXT NOT NULL, updated REAL NOT NULL)"
        )
        self._db.commit()
        self._sites: dict[str, SiteSettings] = {}
        for site, text in self._db.execute("SELECT site, settings FROM site_settings"):
            try:
                stored = json.loads(text)
            except ValueError:
                continue  # an unreadable row is skipped, not fatal
            if isinstance(stored, dict):
                self._sites[site] = _valid_fields(site, stored)

    @property
    def sites(self) -> list[str]:
        return sorted(self._sites)

    def get(self, site: str) -> SiteSettings:
        return self._sites.get(site, SiteSettings())

    def update(self, site: str, update: dict[str, Any], max_sites: int) -> SiteSettings:
        if site not in self._sites and len(self._sites) >= max_sites:
            raise SessionError(f"settings are stored for at most {max_sites} sites", MqttCode.TOO_LARGE)
        settings = self.get(site).merged(update)
        self._db.execute(
            "INSERT INTO site_settings (site, settings, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(site) DO UPDATE SET settings = excluded.settings, updated = excluded.updated",
            (site, json.dumps(asdict(settings)), time.time()),
        )
        self._db.commit()
        self._sites[site] = settings
        return settings

    def close(self) -> None:
        self._db.close()
