"""Where and how results go: fixed result topics, or an MQTT v5 Response Topic.

A `ReplyTo` is fixed when a request arrives; `Replies.send` publishes one result
with the v5 properties (Correlation Data, User Property `type`, Content Type,
Message Expiry) when the link speaks v5.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from voice_common.errors import MqttCode

from ..core.errors import SessionError
from .link import Inbound, MqttLink
from .topics import Topics

JSON = "application/json"
#: Longest MQTT v5 Correlation Data accepted on a request.
MAX_CORRELATION_BYTES = 256


@dataclass(frozen=True)
class ReplyTo:
    """The destination of one request's results."""

    base: str
    response_topic: str | None = None
    correlation: bytes | None = None
    #: time.monotonic() after which the request is stale (v5 Message Expiry).
    deadline: float | None = None

    def topic(self, kind: str, topics: Topics) -> str:
        return self.response_topic or topics.result(self.base, kind)

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def reply_to(base: str, msg: Inbound, reply_prefix: tuple[str, ...]) -> ReplyTo:
    """Validate a request's v5 reply properties; raises SessionError (answered on `base`)."""
    deadline = None if msg.expiry is None else msg.received + msg.expiry
    if msg.correlation is not None and len(msg.correlation) > MAX_CORRELATION_BYTES:
        raise SessionError(f"Correlation Data longer than {MAX_CORRELATION_BYTES} bytes", MqttCode.INVALID_REQUEST)
    if msg.response_topic is None:
        return ReplyTo(base, None, msg.correlation, deadline)
    topic = msg.response_topic
    if (
        any(ch in topic for ch in "#+\0")
        or len(topic) > 256
        or not any(topic.startswith(prefix) and len(topic) > len(prefix) for prefix in reply_prefix)
    ):
        raise SessionError("Response Topic is outside the allowed prefixes", MqttCode.INVALID_REQUEST)
    return ReplyTo(base, topic, msg.correlation, deadline)


class Replies:
    """Publishes results of sessions."""

    def __init__(self, link: MqttLink, topics: Topics) -> None:
        self.link = link
        self.topics = topics

    async def send(
        self,
        reply: ReplyTo,
        kind: str,
        payload: dict[str, Any] | bytes,
        *,
        content_type: str = JSON,
        seq: int | None = None,
        qos: int = 1,
    ) -> None:
        """Publish one result; raises aiomqtt.MqttError when the link is down."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        user = [("type", kind)]
        if seq is not None:
            user.append(("seq", str(seq)))
        expiry = None
        if reply.deadline is not None:
            expiry = max(1, math.ceil(reply.deadline - time.monotonic()))
        props = self.link.properties(
            content_type=content_type, correlation=reply.correlation, user=user, expiry=expiry
        )
        await self.link.publish(reply.topic(kind, self.topics), body, qos=qos, properties=props)

    async def error(self, reply: ReplyTo, err: SessionError) -> None:
        await self.send(reply, "error", err.payload())


def pcm_type(rate: int, width: int, channels: int) -> str:
    return f"audio/pcm;rate={rate};width={width};channels={channels}"
