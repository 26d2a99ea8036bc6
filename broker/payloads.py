"""Request payloads: JSON control messages and `say` bodies (JSON object or plain text)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from .replies import SessionError


def parse_json(payload: bytes, limit: int) -> dict[str, Any]:
    """A JSON object control message (empty payload: {})."""
    if len(payload) > limit:
        raise SessionError("too_large", f"control message larger than {limit} bytes")
    if not payload.strip():
        return {}
    try:
        data = json.loads(payload)
    except ValueError:
        raise SessionError("invalid_request", "payload is not valid JSON") from None
    if not isinstance(data, dict):
        raise SessionError("invalid_request", "payload must be a JSON object")
    return data


def parse_say(payload: bytes, limit: int) -> dict[str, Any]:
    """`say` payload: a JSON object with "text", or the text itself."""
    if len(payload) > limit:
        raise SessionError("too_large", f"message larger than {limit} bytes")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SessionError("invalid_request", "text is not UTF-8") from None
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(text)
            if isinstance(data, dict):
                return data
    return {"text": text}
