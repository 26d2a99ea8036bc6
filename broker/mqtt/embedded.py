"""`--embedded-mqtt`: a small MQTT 3.1.1 broker (amqtt) in the bridge's own process.

Meant for a first run without Mosquitto: it listens on loopback only, allows
anonymous clients and keeps nothing on disk. Use Mosquitto (or any MQTT v5
broker) in production: amqtt has no MQTT v5, no ACLs and no persistence here.
"""

from __future__ import annotations

import logging
from typing import Any

from ..config import MqttConfig

_LOGGER = logging.getLogger(__name__)


class EmbeddedBroker:
    def __init__(self, config: MqttConfig) -> None:
        self.host = config.mqtt_host
        self.port = config.mqtt_port
        self._broker: Any = None  # amqtt.broker.Broker (amqtt has no type information)

    async def start(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as err:
            raise SystemExit(
                "--embedded-mqtt needs amqtt: pip install 'wyoming-voice-services[embedded]' "
                "(or install Mosquitto and leave --embedded-mqtt off)"
            ) from err
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        for name in ("amqtt", "transitions"):  # very chatty at INFO
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(config)
        await self._broker.start()
        _LOGGER.warning(
            "embedded MQTT broker on %s:%s (MQTT 3.1.1, anonymous, for first runs only)", self.host, self.port
        )

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
