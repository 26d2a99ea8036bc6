"""The bridge's one MQTT connection (aiomqtt): connect, subscribe, reconnect with backoff.

`MqttLink.run` keeps the link up for the life of the process and hands every
incoming message, connect and disconnect to a `LinkHandler`. `voice/status` is
retained "online" while connected, with "offline" as the last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Protocol

import aiomqtt
import paho.mqtt.client as mqtt_client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..config import MqttConfig
from ..core.metrics import BrokerMetrics

_LOGGER = logging.getLogger(__name__)

#: Messages aiomqtt may hold before the bridge reads them; beyond that they are dropped.
MAX_QUEUED = 10_000


@dataclass(frozen=True)
class Inbound:
    """One received message with the v5 properties the bridge uses."""

    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation: bytes | None = None
    #: Message Expiry Interval left when it arrived (seconds), if any.
    expiry: int | None = None
    received: float = 0.0

    @classmethod
    def from_message(cls, msg: aiomqtt.Message) -> Inbound:
        props = msg.properties
        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload or "").encode()
        return cls(
            topic=msg.topic.value,
            payload=payload,
            retain=bool(msg.retain),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation=getattr(props, "CorrelationData", None),
            expiry=getattr(props, "MessageExpiryInterval", None),
            received=time.monotonic(),
        )


class LinkHandler(Protocol):
    async def on_connect(self) -> None: ...

    async def on_message(self, msg: Inbound) -> None: ...

    def on_disconnect(self) -> None: ...


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """The TLS setup of --mqtt-tls (None without it)."""
    if not config.mqtt_tls:
        return None
    context = ssl.create_default_context(cafile=config.mqtt_ca)
    if config.mqtt_cert:
        context.load_cert_chain(config.mqtt_cert, config.mqtt_key)
    if config.mqtt_tls_insecure:
        context.check_hostname = False
    return context


class MqttLink:
    """Owns the aiomqtt client; publishes for everyone, reads for the handler."""

    def __init__(self, config: MqttConfig, status_topic: str, subscriptions: list[str],
                 metrics: BrokerMetrics | None = None) -> None:
        self.config = config
        self.v5 = config.mqtt_protocol == "5"
        self.status_topic = status_topic
        self._subscriptions = subscriptions
        self._metrics = metrics
        self._client: aiomqtt.Client | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def properties(
        self,
        *,
        content_type: str | None = None,
        correlation: bytes | None = None,
        user: list[tuple[str, str]] | None = None,
        expiry: int | None = None,
    ) -> Properties | None:
        """PUBLISH properties for a v5 link (None on 3.1.1, which has none)."""
        if not self.v5:
            return None
        props = Properties(PacketTypes.PUBLISH)
        if content_type:
            props.ContentType = content_type
        if correlation is not None:
            props.CorrelationData = correlation
        if user:
            props.UserProperty = user
        if expiry is not None:
            props.MessageExpiryInterval = expiry
        return props

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publish now; raises aiomqtt.MqttError while the link is down."""
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected to the MQTT broker")
        await client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def _make_client(self) -> aiomqtt.Client:
        config = self.config
        return aiomqtt.Client(
            config.mqtt_host, config.mqtt_port,
            username=config.mqtt_username, password=config.mqtt_password, identifier=config.mqtt_client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if self.v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            # A fresh session on every connect: requests queued during an outage are stale.
            clean_session=None if self.v5 else True,
            clean_start=True if self.v5 else mqtt_client.MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=config.mqtt_keepalive, timeout=10,
            tls_context=tls_context(config),
            tls_insecure=config.mqtt_tls_insecure if config.mqtt_tls else None,
            max_queued_incoming_messages=MAX_QUEUED,
        )

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        wanted: list[tuple[str, SubscribeOptions]] | list[tuple[str, int]]
        if self.v5:
            # Retain Handling 2: no retained requests on subscribe; Retain As Published so
            # requests published with the retain flag can be recognised and ignored.
            options = SubscribeOptions(qos=1, retainHandling=2, retainAsPublished=True)
            wanted = [(topic, options) for topic in self._subscriptions]
        else:
            wanted = [(topic, 1) for topic in self._subscriptions]
        granted: list[int | ReasonCode] = list(await client.subscribe(wanted))
        for topic, code in zip(self._subscriptions, granted, strict=False):
            # v5 answers with reason codes, 3.1.1 with the granted QoS (0x80: refused).
            refused = code.is_failure if isinstance(code, ReasonCode) else code >= 0x80
            if refused:
                _LOGGER.error("subscription to %s refused by the broker (%s)", topic, code)

    async def run(self, handler: LinkHandler) -> None:
        """Stay connected until cancelled; then publish "offline" and disconnect."""
        config = self.config
        where = f"{config.mqtt_host}:{config.mqtt_port}"
        delay = config.reconnect_min
        while True:
            try:
                async with self._make_client() as client:
                    await self._subscribe(client)
                    await client.publish(self.status_topic, b"online", qos=1, retain=True)
                    self._client = client
                    delay = config.reconnect_min
                    _LOGGER.info("connected to MQTT broker %s", where)
                    if self._metrics is not None:
                        self._metrics.mqtt_connected.set(1)
                    try:
                        await handler.on_connect()
                        async for message in client.messages:
                            await handler.on_message(Inbound.from_message(message))
                    except asyncio.CancelledError:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(
                                client.publish(self.status_topic, b"offline", qos=1, retain=True), 2
                            )
                        raise
            except aiomqtt.MqttError as err:
                _LOGGER.warning("MQTT connection to %s lost or refused: %s", where, err)
            except OSError as err:  # TLS setup and socket errors that aiomqtt does not wrap
                _LOGGER.warning("cannot connect to MQTT broker %s: %s", where, err)
            finally:
                if self._client is not None:
                    self._client = None
                    if self._metrics is not None:
                        self._metrics.mqtt_connected.set(0)
                    handler.on_disconnect()
            if self._metrics is not None:
                self._metrics.reconnects.inc()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, config.reconnect_max)
