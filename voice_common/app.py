"""The life of a service process: load, listen, advertise, serve, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Callable
from urllib.parse import urlparse

from .config import parse_host_port
from .http import HealthServer
from .metrics import ServiceMetrics
from .server import ConnectionFactory, Limits, WyomingServer, wait_for_stop_signal
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
    config,
    *,
    service: str,
    metrics: ServiceMetrics,
    load: Callable[[], None],
    factory: ConnectionFactory,
) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code.

    `load` runs in a thread (models are big) while /healthz answers 503; the
    Wyoming port opens only once it has finished, so `describe` is always instant.
    """
    ready = False
    health: HealthServer | None = None
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
        if health:
            await health.stop()
        return 0
    try:
        load_task.result()
    except Exception as err:  # noqa: BLE001 - a model that cannot load: say so plainly, exit 2
        expected = isinstance(err, (RuntimeError, OSError, ValueError))  # ModelError, BackendError, ...
        _LOGGER.error("cannot start: %s", err, exc_info=not expected)
        if health:
            await health.stop()
        stop_task.cancel()
        return 2

    server = WyomingServer(config.uri, factory, Limits.from_config(config))
    await server.start()
    advertiser: Advertiser | None = None
    try:
        if config.zeroconf is not None:
            parsed = urlparse(config.uri)
            port = server.port
            if parsed.scheme != "tcp" or port is None:
                raise SystemExit("--zeroconf needs a tcp:// URI")
            address = config.zeroconf_host or lan_address(parsed.hostname)
            name = config.zeroconf or default_instance_name(service)
            advertiser = Advertiser(name, port, address)
            await advertiser.start()
        ready = True
        metrics.ready.set(1)
        _LOGGER.info("ready")
        await stop_task
        _LOGGER.info("stopping")
    finally:
        ready = False
        # Connections end (with `shutting_down`) while zeroconf says goodbye, not after it.
        await asyncio.gather(server.stop(), _close_quietly(advertiser))
        if health:
            await health.stop()
    return 0


async def _close_quietly(advertiser: Advertiser | None) -> None:
    if advertiser is not None:
        with contextlib.suppress(Exception):
            await advertiser.close()


def main_entry(coro_factory: Callable[[], "asyncio.Future[int] | object"]) -> None:
    """Run a service coroutine; exit 0 on SIGTERM, 2 on a startup error already logged."""
    try:
        code = asyncio.run(coro_factory())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
