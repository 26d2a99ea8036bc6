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
from .mqtt.embedded import EmbeddedBroker
from .mqtt.front import Bridge
from .mqtt.link import MqttLink
from .mqtt.topics import Topics

_LOGGER = logging.getLogger(__name__)


async def run_bridge(config: BridgeConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    metrics = BrokerMetrics()
    topics = Topics(config.prefix, config.ha_prefix)
    link = MqttLink(config, topics.status, topics.subscriptions(config.group), metrics)
    pool = ServicePool(config.connect_timeout, metrics)
    store = SettingsStore(config.db)
    core = Core(config, pool, store, metrics)
    bridge = Bridge(config, link, core)

    embedded = EmbeddedBroker(config) if config.embedded_mqtt else None
    health = None
    if config.http:
        host, port = parse_host_port(config.http)
        health = HealthServer(host, port, metrics.registry, lambda: link.connected)
    discovery = Discovery(pool) if config.discover else None
    tasks: list[asyncio.Task] = []
    try:
        if embedded is not None:
            await embedded.start()
        if health is not None:
            await health.start()
        for uri in config.stt:
            pool.add(uri, "static", expect="asr")
        for uri in config.tts:
            pool.add(uri, "static", expect="tts")
        if discovery is not None:
            await discovery.start()
        tasks = [
            asyncio.ensure_future(link.run(bridge)),
            asyncio.ensure_future(pool.run_health_checks(config.health_interval)),
            asyncio.ensure_future(bridge.watch_services()),
        ]
        metrics.ready.set(1)
        stop = asyncio.ensure_future(wait_for_stop_signal())
        await asyncio.wait([stop, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
        if tasks[0].done():  # the link never ends on its own: a bug; surface it
            tasks[0].result()
        _LOGGER.info("stopping")
    finally:
        metrics.ready.set(0)
        await bridge.close()
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
