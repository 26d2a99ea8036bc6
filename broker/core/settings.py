"""Per-site settings (mode, voice, speaker, speed, language), kept in SQLite.

An update merges a JSON object into the stored settings (null deletes a key; checked by
`payloads.SiteSettings.merged`); the MQTT front publishes the result retained.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from voice_common.errors import MqttCode

from .errors import SessionError
from .payloads import SETTING_FIELDS, SiteSettings

_LOGGER = logging.getLogger(__name__)


def _valid_fields(site: str, stored: dict[str, Any]) -> SiteSettings:
    """Stored settings, each field checked as `settings/set` checks it today: one that is no
    longer valid (a speed outside today's range) is dropped, and the site keeps the rest."""
    settings = SiteSettings()
    for key, value in stored.items():
        if key not in SETTING_FIELDS:
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
