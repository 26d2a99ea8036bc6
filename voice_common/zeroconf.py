"""Advertising a server on the LAN as `_wyoming._tcp.local.` (Home Assistant discovery)."""

from __future__ import annotations

import logging
import socket

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = "224.0.0.251"


def default_instance_name(service: str) -> str:
    """`<hostname>-<service>`: unique per service so STT and TTS on one host don't collide."""
    host = socket.gethostname().split(".")[0] or "wyoming"
    return f"{host}-{service}"


def lan_address(bind_host: str | None = None) -> str:
    """The address peers can reach us on, even when bound to 0.0.0.0.

    A specific bind address is used as is; otherwise the address of the
    interface that routes to the mDNS group (no packet is sent).
    """
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        return socket.gethostbyname(bind_host)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((_MDNS_GROUP, 5353))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


class Advertiser:
    """Registers one service instance; `close()` unregisters it."""

    def __init__(self, name: str, port: int, address: str, properties: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = port
        self.address = address
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties=properties or {},
            server=f"{name}.local.",
        )
        self._zc: AsyncZeroconf | None = None

    async def start(self) -> None:
        self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        # allow_name_change: a second instance with the same name gets "name (2)" instead of failing.
        # The call returns a task that completes once the announcement was sent.
        await (await self._zc.async_register_service(self._info, allow_name_change=True))
        _LOGGER.info("zeroconf: advertising %s at %s:%s", self._info.name, self.address, self.port)

    async def close(self) -> None:
        if self._zc is None:
            return
        try:
            # Await the returned task: it sends the goodbye packets peers rely on.
            await (await self._zc.async_unregister_service(self._info))
        finally:
            await self._zc.async_close()
            self._zc = None
        _LOGGER.info("zeroconf: unregistered %s", self.name)
