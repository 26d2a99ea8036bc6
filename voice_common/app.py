"""The life of a service process: load, listen, advertise, serve, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlparse

from .config import ConfigError, parse_host_port, usage_error
from .http import HealthServer
from .metrics import ServiceMetrics
from .server import ConnectionFactory, WyomingServer, wait_for_stop_signal
from .settings import ConnectionLimits, ServerConfig
from .zeroconf import Advertiser, default_instance_name, lan_address

_LOGGER = logging.getLogger(__name__)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # faster-whisper logs every request at INFO ("Processing audio ..."): keep it for DEBUG.
    if level.upper() != "DEBUG":
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)


async def run_service(
    config: ServerConfig,
    *,
    service: str,
    metrics: ServiceMetrics,
    load: Callable[[], None],
    factory: ConnectionFactory,
) -> int:
    """Run until SIGTERM/SIGINT (or, with stdio://, until stdin ends); returns the exit code.

    The address is claimed first, so a mistake there (a port in use) is a one-line
    ConfigError before any model loads. `load` then runs in a thread (models are big)
    while /healthz answers 503; the Wyoming port accepts only once it has finished,
    so `describe` is always instant.
    """
    if config.zeroconf is not None and urlparse(config.uri).scheme != "tcp":
        raise ConfigError(f"--zeroconf: advertising needs a tcp:// --uri, not {config.uri}")
    server = WyomingServer(config.uri, factory, ConnectionLimits.of(config))
    server.bind()
    ready = False
    health: HealthServer | None = None
    advertiser: Advertiser | None = None
    stop_task: asyncio.Future | None = None
    try:
        if config.http:
            host, port = parse_host_port(config.http)
            health = HealthServer(host, port, metrics.registry, lambda: ready)
            await health.start()
        stop_task = asyncio.ensure_future(wait_for_stop_signal())
        load_task = asyncio.ensure_future(asyncio.to_thread(load))
        await asyncio.wait({stop_task, load_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop_task.done():
            _LOGGER.info("stopped while loading")
            load_task.cancel()
            return 0
        try:
            load_task.result()
        except Exception as err:  # a model that cannot load: say so plainly, exit 2
            expected = isinstance(err, (RuntimeError, OSError, ValueError))  # ModelError, BackendError, ...
            _LOGGER.error("cannot start: %s", err, exc_info=not expected)
            return 2

        await server.start()
        if config.zeroconf is not None:
            address = config.zeroconf_host or lan_address(urlparse(config.uri).hostname)
            assert server.port is not None, "a tcp:// --uri has a port"  # checked at the top
            advertiser = Advertiser(config.zeroconf or default_instance_name(service), server.port, address)
            await advertiser.start()
        ready = True
        metrics.ready.set(1)
        _LOGGER.info("ready")
        ended = {stop_task} | ({server.finished} if server.finished is not None else set())
        await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
        _LOGGER.info("stopping" if stop_task.done() else "stdin closed; stopping")
        return 0
    finally:
        ready = False
        if stop_task is not None:
            stop_task.cancel()
        # Connections end (with `shutting_down`) while zeroconf says goodbye, not after it.
        await asyncio.gather(server.stop(), _close_quietly(advertiser))
        if health:
            await health.stop()


async def _close_quietly(advertiser: Advertiser | None) -> None:
    if advertiser is not None:
        with contextlib.suppress(Exception):
            await advertiser.close()


def main_entry(coro_factory: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run a service coroutine; exit 0 on SIGTERM, 2 on a start-up error (one line on stderr)."""
    try:
        code = asyncio.run(coro_factory())
    except KeyboardInterrupt:
        code = 0
    except ConfigError as err:  # found while starting: an address in use, a bad --http, ...
        usage_error(str(err))
    sys.exit(code)
