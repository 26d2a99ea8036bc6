"""The HTTP front as the bridge's wiring sees it: one call, `start_http_front(config, core, ...)`.

It opens the key store (the same SQLite file as the site settings), builds the per-key
limiters, and starts the app with the OpenAI routes and the WebSockets, which find the
core and the limiters on `app.state` (`FrontState`). The core knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from voice_common.errors import MqttCode

from ..config import BridgeConfig
from ..core.core import Core
from ..core.keys import Key, KeyLimits, KeyStore
from ..core.limits import KeyLimiter, KeyLimiters
from .app import ModelInfo
from .errors import ApiError
from .server import ApiServer, start_api

_LOGGER = logging.getLogger(__name__)

#: The caller when --api-auth is off: every anonymous call shares these limiters.
ANONYMOUS = Key(id=0, name="anonymous", shown="", created=0.0, limits=KeyLimits())


@dataclass
class FrontState:
    """What the routes need, on `app.state.front`."""

    config: BridgeConfig
    core: Core
    limiters: KeyLimiters

    def limiter(self, key: object | None) -> KeyLimiter:
        """The limiters of the calling key (`ANONYMOUS` with --api-auth off)."""
        return self.limiters.for_key(key if isinstance(key, Key) else ANONYMOUS)

    def voices(self) -> list[dict]:
        """Every TTS voice the healthy services offer, once by name."""
        return _unique(s.details.get("tts", []) for s in self.core.pool.services if s.healthy and "tts" in s.kinds)

    def profile_voices(self) -> set[str]:
        """The voices that are voice profiles (cloned voices) on some healthy service."""
        return {name for s in self.core.pool.services if s.healthy and s.profiles is not None
                for name in s.profiles.voices}

    def stt_models(self) -> list[dict]:
        return _unique(s.details.get("asr", []) for s in self.core.pool.services if s.healthy and "asr" in s.kinds)


def _unique(groups: Iterator[list[dict]]) -> list[dict]:
    seen: dict[str, dict] = {}
    for group in groups:
        for entry in group:
            seen.setdefault(entry["name"], entry)
    return list(seen.values())


def key_check(store: KeyStore) -> Callable[[str], Key | None]:
    """KeyStore.check, with a database that cannot be read answered as 503."""

    def check(token: str) -> Key | None:
        try:
            return store.check(token)
        except sqlite3.Error as err:
            _LOGGER.error("API keys: cannot read the database (%s)", err)
            raise ApiError("the key database cannot be read", MqttCode.SERVICE_UNAVAILABLE) from None

    return check


async def start_http_front(config: BridgeConfig, core: Core, registry: CollectorRegistry,
                           is_ready: Callable[[], bool]) -> tuple[ApiServer, KeyStore]:
    """The HTTP API listening on --api; stop the server and close the store at the end."""
    from .console import console_router
    from .openai_routes import router as openai_router
    from .voice_routes import router as voice_router
    from .websocket import router as websocket_router

    store = KeyStore(config.db)
    state = FrontState(config, core, KeyLimiters(default_streams=config.api_max_streams_per_key))

    def list_models() -> list[ModelInfo]:
        models = [ModelInfo(m["name"], owned_by=m["backend"]) for m in state.stt_models()]
        return models + [ModelInfo(v["name"], owned_by=v["backend"]) for v in state.voices()]

    server = await start_api(config, registry=registry, is_ready=is_ready, list_models=list_models,
                             check_key=key_check(store),
                             routers=(openai_router, voice_router, websocket_router, console_router()),
                             state={"front": state, "core": core})
    return server, store
