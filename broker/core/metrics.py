"""The bridge's Prometheus metrics: the shared service set plus MQTT-side counters."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from voice_common.metrics import ServiceMetrics


class BrokerMetrics(ServiceMetrics):
    """`requests`/`errors`/`latency` use the label `backend` = stt | tts | chat."""

    def __init__(self) -> None:
        super().__init__("voice_broker")
        reg = self.registry
        ns = "voice_broker"
        self.messages = Counter("messages", "MQTT messages received, by request kind", ["kind"],
                                namespace=ns, registry=reg)
        self.dropped = Counter("dropped", "MQTT messages dropped, by reason", ["reason"],
                               namespace=ns, registry=reg)
        self.mqtt_connected = Gauge("mqtt_connected", "1 while connected to the MQTT broker",
                                    namespace=ns, registry=reg)
        self.reconnects = Counter("mqtt_reconnects", "MQTT connection attempts after a failure or loss",
                                  namespace=ns, registry=reg)
        self.services = Gauge("services", "Wyoming services known, by kind and health",
                              ["kind", "healthy"], namespace=ns, registry=reg)
        self.failovers = Counter("failovers", "Requests moved to another service after a failure",
                                 ["backend"], namespace=ns, registry=reg)
