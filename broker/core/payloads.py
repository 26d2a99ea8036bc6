"""Request payloads: JSON control messages and `say` bodies (JSON object or plain text)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from voice_common.errors import MqttCode

from ..mqtt.replies import SessionError


def parse_json(payload: bytes, limit: int) -> dict[str, Any]:
    """A JSON object control message (empty payload: {})."""
    if len(payload) > limit:
        raise SessionError(f"control message larger than {limit} bytes", MqttCode.TOO_LARGE)
    if not payload.strip():
        return {}
    try:
        data = json.loads(payload)
    except ValueError:
        raise SessionError("payload is not valid JSON", MqttCode.INVALID_REQUEST) from None
    if not isinstance(data, dict):
        raise SessionError("payload must be a JSON object", MqttCode.INVALID_REQUEST)
    return data


def parse_say(payload: bytes, limit: int) -> dict[str, Any]:
    """`say` payload: a JSON object with "text", or the text itself."""
    if len(payload) > limit:
        raise SessionError(f"message larger than {limit} bytes", MqttCode.TOO_LARGE)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SessionError("text is not UTF-8", MqttCode.INVALID_REQUEST) from None
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(text)
            if isinstance(data, dict):
                return data
    return {"text": text}
