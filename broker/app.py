"""The life of the bridge process: config -> core -> the fronts; discover, serve, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from voice_common.config import parse_host_port
from voice_common.http import HealthServer
from voice_common.server import wait_for_stop_signal

from .config import BridgeConfig
from .core.core import Core
from .core.discovery import Discovery
from .core.metrics import BrokerMetrics
from .core.services import ServicePool
from .core.settings import SettingsStore
from .http.front import start_http_front
from .mqtt.embedded import EmbeddedBroker
from .mqtt.front import Bridge
from .mqtt.link import MqttLink
from .mqtt.topics import Topics

_LOGGER = logging.getLogger(__name__)


async def run_bridge(config: BridgeConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code. The fronts: MQTT unless --no-mqtt,
    HTTP with --api; each is started here in one call and knows the core, never the other."""
    metrics = BrokerMetrics()
    pool = ServicePool(config.connect_timeout, metrics)
    store = SettingsStore(config.db)
    core = Core(config, pool, store, metrics)
    link: MqttLink | None = None
    bridge: Bridge | None = None
    if config.mqtt:
        topics = Topics(config.prefix, config.ha_prefix)
        link = MqttLink(config, topics.status, topics.subscriptions(config.group), metrics)
        bridge = Bridge(config, link, core)
    started = False

    def ready() -> bool:
        """Started, and connected to MQTT when that front runs."""
        return started and (link is None or link.connected)

    embedded = EmbeddedBroker(config) if config.embedded_mqtt else None
    health = None
    if config.http:
        host, port = parse_host_port(config.http)
        health = HealthServer(host, port, metrics.registry, ready)
    discovery = Discovery(pool) if config.discover else None
    tasks: list[asyncio.Task] = []
    api = None
    try:
        if embedded is not None:
            await embedded.start()
        if health is not None:
            await health.start()
        if config.api:
            api = await start_http_front(config, core, metrics.registry, ready)
        for uri in config.stt:
            pool.add(uri, "static", expect="asr")
        for uri in config.tts:
            pool.add(uri, "static", expect="tts")
        if discovery is not None:
            await discovery.start()
        tasks = [asyncio.ensure_future(pool.run_health_checks(config.health_interval))]
        if link is not None and bridge is not None:
            # the link first in `tasks`, so it is cancelled last: it publishes "offline"
            tasks[:0] = [asyncio.ensure_future(link.run(bridge)), asyncio.ensure_future(bridge.watch_services())]
        started = True
        metrics.ready.set(1)
        stop = asyncio.ensure_future(wait_for_stop_signal())
        await asyncio.wait([stop, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
        if tasks[0].done():  # the link and the health checks never end on their own: a bug; surface it
            tasks[0].result()
        _LOGGER.info("stopping")
    finally:
        started = False
        metrics.ready.set(0)
        if bridge is not None:
            await bridge.close()
        if api is not None:
            await api[0].stop()  # WebSockets get close 1012; their sessions end below
            api[1].close()
        await core.close()  # sessions answer `interrupted` while the link is still up
        for task in reversed(tasks):  # the link last: it publishes "offline"
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await pool.close()
        if discovery is not None:
            await discovery.close()
        if health is not None:
            await health.stop()
        if embedded is not None:
            await embedded.stop()
        store.close()
    return 0
