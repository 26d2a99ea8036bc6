"""Finding Wyoming services on the LAN: browse `_wyoming._tcp.local.` and add them to the pool.

Every service found is described; the pool keeps those that offer asr or tts
and drops the others from selection (they stay known, without kinds).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from voice_common.zeroconf import SERVICE_TYPE

from .services import ServicePool

_LOGGER = logging.getLogger(__name__)


class Discovery:
    def __init__(self, pool: ServicePool) -> None:
        self._pool = pool
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._uris: dict[str, str] = {}  # zeroconf name -> uri
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        _LOGGER.info("zeroconf: looking for %s", SERVICE_TYPE)

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            uri = self._uris.pop(name, None)
            if uri is not None:
                self._pool.remove(uri)
            return
        task = asyncio.ensure_future(self._resolve(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, name: str) -> None:
        assert self._zc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, 3000) or not info.port:
            _LOGGER.info("zeroconf: could not resolve %s", name)
            return
        addresses = info.parsed_addresses(IPVersion.V4Only) or [
            socket.inet_ntoa(a) for a in info.addresses if len(a) == 4
        ]
        if not addresses:
            return
        uri = f"tcp://{addresses[0]}:{info.port}"
        old = self._uris.get(name)
        if old is not None and old != uri:
            self._pool.remove(old)
        self._uris[name] = uri
        self._pool.add(uri, "zeroconf", name=name.removesuffix("." + SERVICE_TYPE))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            await self._zc.async_close()
